"""Embedding-only simulations and the closed-form quantities of the theory (Section 3).

Three groups of functions; all return data (arrays, tensors, data frames), none plots:

* **Section 3, closed forms** — the gradient of the cosine similarity w.r.t. ``z``
  (Prop. 3.1: ``grad = (ŷ - cos θ ẑ) / ||z||``, orthogonal to ``z``, of size ``sin θ / ||z||``),
  one gradient step and the norm growth it causes (Cor. 3.3:
  ``||z - γ g||² = ||z||² + γ² ||g||²``), and the continuous-time prediction of how many steps
  a positive pair needs to align.
* **Simulation (a)** — gradient descent directly on embedding pairs (``n`` pairs in ``d``
  dimensions, SGD on ``-mean_i cos(z_i, p_i)``): steps until the mean cosine similarity reaches
  ``1 - tol``, as a function of the shared norm and of the initial angle.
* **Simulations (b)/(c)** — an MLP trained with a supervised InfoNCE loss on class-imbalanced
  points of the 10-d sphere mapped to 64-d; per-class embedding norms over training and the
  norms' relation to the local density (distance to the k-th neighbour).

Invalid parameters (a non-positive norm, learning rate, ``n`` or ``d``, a tolerance outside
``(0, 1)``, a class weight ``<= 0``) raise :class:`ValueError` naming the parameter and its
valid range before anything is computed. Norm 0 is rejected: the cosine similarity is
undefined there (0/0). A non-finite value during a simulation raises instead of being returned.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import optimize, stats
from tqdm.auto import tqdm

from .losses import supervised_infonce

# --------------------------------------------------------------------------- validation


def _check_positive(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0."""
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        extra = (" (norm 0 is degenerate: the cosine similarity z·y / (||z|| ||y||) is undefined)"
                 if "norm" in name and _is_zero(value) else "")
        raise ValueError(f"{name} must be a finite number > 0 (valid range: (0, inf)), got {value!r}{extra}")


def _is_zero(value) -> bool:
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):
        return False


def _check_count(name: str, value: int) -> None:
    """Raise ValueError unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (valid range: 1, 2, ...), got {value!r}")


def _check_tolerance(tol: float) -> None:
    try:
        ok = 0.0 < float(tol) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"tol must lie in the open interval (0, 1), got {tol!r}")


def _check_nonzero_rows(name: str, x: torch.Tensor) -> None:
    norms = x.norm(dim=-1)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values")
    if bool((norms == 0).any()):
        raise ValueError(f"{name} has a row of norm 0: the cosine similarity is undefined there "
                         f"(valid: every embedding has norm > 0)")


# --------------------------------------------------------------------------- Section 3 closed forms


def cosine_gradient(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of ``cos(z, y)`` w.r.t. ``z``, by automatic differentiation (Prop. 3.1).

    Args:
        z: embeddings ``(..., d)``, every row of norm > 0.
        y: fixed directions ``(..., d)`` (broadcast against ``z``), rows of norm > 0.

    Returns:
        ``(..., d)``: ``∂ cos(z, y) / ∂ z`` row-wise (same dtype as ``z``). By Prop. 3.1 it
        equals ``(ŷ - cos θ ẑ) / ||z||``: orthogonal to ``z``, of size ``sin θ / ||z||``.

    Raises:
        ValueError: a row of ``z`` or ``y`` of norm 0 (cosine undefined) or non-finite values.
    """
    _check_nonzero_rows("z", z)
    _check_nonzero_rows("y", y)
    with torch.enable_grad():
        zz = z.detach().clone().requires_grad_(True)
        cos = (zz * y).sum(-1) / (zz.norm(dim=-1) * y.norm(dim=-1))
        (grad,) = torch.autograd.grad(cos.sum(), zz)
    return grad


def cosine_gradient_closed_form(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Closed form of Prop. 3.1: ``∂ cos(z, y) / ∂ z = (ŷ - cos θ ẑ) / ||z||``.

    Args:
        z, y: ``(..., d)``, rows of norm > 0.

    Returns:
        ``(..., d)``.

    Raises:
        ValueError: a row of norm 0.
    """
    _check_nonzero_rows("z", z)
    _check_nonzero_rows("y", y)
    zn = z.norm(dim=-1, keepdim=True)
    zh, yh = z / zn, y / y.norm(dim=-1, keepdim=True)
    cos = (zh * yh).sum(-1, keepdim=True)
    return (yh - cos * zh) / zn


def cosine_gradient_field(direction: Sequence[float], xs: np.ndarray, ys: np.ndarray,
                          min_norm: float = 0.0) -> pd.DataFrame:
    """The gradient field of ``cos(z, y)`` in a 2-D plane (the conceptual Figure 1, Prop. 3.1).

    Args:
        direction: the fixed 2-D vector ``y`` (norm > 0).
        xs, ys: 1-D grid coordinates; the field is evaluated at every ``(x, y)`` pair.
        min_norm: grid points with ``||z|| <= min_norm`` are left out (the field grows as
            ``1/||z||`` near the origin and is undefined at 0); must be >= 0.

    Returns:
        one row per grid point: ``x, y, gx, gy`` (the gradient, by autograd), ``norm`` = ||z||,
        ``angle`` = θ in radians, ``grad_norm`` = |grad|, ``sin_over_norm`` = sin θ / ||z||
        (closed form), ``orthogonality`` = cos of the angle between grad and z.

    Raises:
        ValueError: ``direction`` of norm 0 or not 2-D; ``min_norm`` < 0.
    """
    y = torch.as_tensor(direction, dtype=torch.float64)
    if y.shape != (2,):
        raise ValueError(f"direction must be a 2-D vector, got shape {tuple(y.shape)}")
    _check_positive("norm of direction", float(y.norm()))
    if min_norm < 0:
        raise ValueError(f"min_norm must be >= 0, got {min_norm!r}")
    gx, gy = np.meshgrid(np.asarray(xs, float), np.asarray(ys, float), indexing="xy")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    pts = pts[np.linalg.norm(pts, axis=1) > max(min_norm, 0.0)]
    z = torch.as_tensor(pts, dtype=torch.float64)
    g = cosine_gradient(z, y.expand_as(z))
    zn = z.norm(dim=1)
    cos = (z @ y) / (zn * y.norm())
    angle = torch.arccos(cos.clamp(-1, 1))
    gn = g.norm(dim=1)
    ortho = (g * z).sum(1) / (gn * zn).clamp_min(1e-300)
    return pd.DataFrame({"x": pts[:, 0], "y": pts[:, 1], "gx": g[:, 0].numpy(), "gy": g[:, 1].numpy(),
                         "norm": zn.numpy(), "angle": angle.numpy(), "grad_norm": gn.numpy(),
                         "sin_over_norm": (torch.sin(angle) / zn).numpy(), "orthogonality": ortho.numpy()})


def gradient_step(z: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """One gradient-descent step ``z - lr · grad`` (row-wise; Cor. 3.3).

    For a loss that sees ``z`` only through ``z/||z||`` the gradient is orthogonal to ``z``,
    so ``||z - lr·g||² = ||z||² + lr² ||g||²`` exactly: every step grows the norm.

    Args:
        z: ``(..., d)``.
        grad: ``(..., d)``, the loss gradient at ``z``.
        lr: step size γ > 0.

    Returns:
        ``(..., d)``.

    Raises:
        ValueError: ``lr`` not > 0.
    """
    _check_positive("lr", lr)
    return z - lr * grad


def descend_cosine(z0: Sequence[float], direction: Sequence[float], lr: float, steps: int) -> dict[str, np.ndarray]:
    """Gradient descent of one embedding on the loss ``-cos(z, y)`` (Figure 1; Cor. 3.3).

    The gradient is taken by autograd (not by the closed form), in float64.

    Args:
        z0: initial embedding ``(d,)``, norm > 0.
        direction: the fixed ``y`` ``(d,)``, norm > 0.
        lr: step size γ > 0.
        steps: number of steps >= 1.

    Returns:
        ``z``: ``(steps+1, d)`` the trajectory; ``grad``: ``(steps, d)`` the loss gradient
        ``-∂cos/∂z`` at each step; ``norm``: ``(steps+1,)``; ``cos``: ``(steps+1,)`` cos(z_t, y).

    Raises:
        ValueError: invalid ``lr`` / ``steps``, a zero ``z0`` or ``direction``, mismatched shapes.
        FloatingPointError: a non-finite value appears.
    """
    _check_positive("lr", lr)
    _check_count("steps", steps)
    z = torch.as_tensor(z0, dtype=torch.float64).clone()
    y = torch.as_tensor(direction, dtype=torch.float64)
    if z.dim() != 1 or z.shape != y.shape:
        raise ValueError(f"z0 and direction must be vectors of the same length, got {tuple(z.shape)} and {tuple(y.shape)}")
    _check_positive("norm of z0", float(z.norm()))
    _check_positive("norm of direction", float(y.norm()))
    zs, gs = [z.clone()], []
    for _ in range(steps):
        g = -cosine_gradient(z, y)  # gradient of the loss -cos
        z = z - lr * g
        if not bool(torch.isfinite(z).all()):
            raise FloatingPointError("non-finite embedding during gradient descent")
        zs.append(z.clone())
        gs.append(g)
    Z = torch.stack(zs)
    cos = (Z @ y) / (Z.norm(dim=1) * y.norm())
    return {"z": Z.numpy(), "grad": torch.stack(gs).numpy(), "norm": Z.norm(dim=1).numpy(), "cos": cos.numpy()}


def predicted_steps(initial_cos: np.ndarray, norm_z: float, norm_p: float, lr: float, n: int, tol: float) -> float:
    """Continuous-time prediction of the steps a set of positive pairs needs to align.

    With the loss ``L = -(1/n) Σ_i cos(z_i, p_i)`` and SGD at learning rate γ, each step
    rotates ``z_i`` towards ``p_i`` by ``(γ/n) sin θ_i / ||z_i||²`` and ``p_i`` towards ``z_i``
    by ``(γ/n) sin θ_i / ||p_i||²`` (Prop. 3.1). Hence ``dθ/dt = -k sin θ`` with
    ``k = (γ/n)(1/||z||² + 1/||p||²)`` and ``tan(θ(t)/2) = tan(θ_0/2) e^{-k t}``. The returned
    ``t`` solves ``mean_i cos θ_i(t) = 1 - tol``. For equal norms ρ, ``t ∝ n ρ² / (2γ)``: the
    quadratic law of Section 3. Norm growth (Cor. 3.3) and the discreteness of steps are
    neglected.

    Args:
        initial_cos: ``(n_pairs,)`` initial cosine similarities in ``[-1, 1]``.
        norm_z, norm_p: the norms of the embeddings (> 0).
        lr: γ > 0.
        n: the number of pairs the loss averages over (>= 1); sets the per-pair step γ/n.
        tol: convergence tolerance in (0, 1).

    Returns:
        the (real-valued) number of steps; 0 if already aligned; ``inf`` when the target
        cannot be reached (pairs at exactly θ = π: the gradient vanishes there).

    Raises:
        ValueError: invalid parameters.
    """
    _check_positive("norm_z", norm_z)
    _check_positive("norm_p", norm_p)
    _check_positive("lr", lr)
    _check_count("n", n)
    _check_tolerance(tol)
    c0 = np.clip(np.asarray(initial_cos, dtype=float), -1.0, 1.0)
    target = 1.0 - tol
    if c0.mean() >= target:
        return 0.0
    k = (lr / n) * (1.0 / norm_z ** 2 + 1.0 / norm_p ** 2)
    with np.errstate(divide="ignore"):
        t0 = np.sqrt((1.0 - c0) / (1.0 + c0))  # tan(θ0/2); inf at θ0 = π
    stuck = ~np.isfinite(t0)
    if np.mean(np.where(stuck, -1.0, 1.0)) < target:
        return math.inf

    def mean_cos(t: float) -> float:
        tt = np.where(stuck, np.inf, t0 * np.exp(-k * t))
        c = np.where(stuck, -1.0, (1.0 - tt ** 2) / (1.0 + tt ** 2))
        return float(c.mean()) - target

    hi = 1.0
    while mean_cos(hi) < 0:
        hi *= 2.0
    return float(optimize.brentq(mean_cos, 0.0, hi, xtol=1e-9, rtol=1e-12))


# --------------------------------------------------------------------------- Simulation (a)


@dataclass(frozen=True)
class PairAlignment:
    """Result of :func:`steps_to_align` for ``L`` independent sets of ``n`` pairs.

    Attributes:
        steps: ``(L,)`` SGD steps until the mean cosine reached ``1 - tol`` (``max_steps`` if not).
        converged: ``(L,)`` bool.
        initial_cos: ``(L, n)`` cosine of each pair before training.
        final_mean_cos: ``(L,)``.
        initial_mean_norm, final_mean_norm: ``(L,)`` mean norm over all ``2n`` embeddings.
    """

    steps: np.ndarray
    converged: np.ndarray
    initial_cos: np.ndarray
    final_mean_cos: np.ndarray
    initial_mean_norm: np.ndarray
    final_mean_norm: np.ndarray


def pair_sgd_step(z: torch.Tensor, p: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One plain-SGD step of simulation (a) on ``L = -(1/n) Σ_i cos(z_i, p_i)``.

    The gradient is the closed form of Prop. 3.1, ``∂L/∂z_i = -(p̂_i - cos θ_i ẑ_i) / (n ||z_i||)``
    (and symmetrically for ``p_i``); tests check it against automatic differentiation with
    ``torch.optim.SGD``. It is used instead of autograd because it is ~4x faster, which matters
    for the ~40 000 steps of the norm sweep on a CPU.

    Args:
        z, p: ``(n, d)``, rows of norm > 0 (not checked here: this is the inner loop).
        lr: learning rate γ.

    Returns:
        ``z_new, p_new`` (``(n, d)`` each) and ``cos``: ``(n,)`` the cosines *before* the step.
    """
    n = z.shape[0]
    nz, np_ = z.norm(dim=-1, keepdim=True), p.norm(dim=-1, keepdim=True)
    zh, ph = z / nz, p / np_
    cos = (zh * ph).sum(-1, keepdim=True)
    step = lr / n
    return z + step * (ph - cos * zh) / nz, p + step * (zh - cos * ph) / np_, cos.squeeze(-1)


def steps_to_align(z: torch.Tensor, p: torch.Tensor, lr: float = 10.0, tol: float = 1e-3,
                   max_steps: int = 200_000, progress: Optional[bool] = False, desc: str = "pairs") -> PairAlignment:
    """Simulation (a): SGD on the embeddings themselves until the pairs align.

    Loss of each set ``l``: ``L_l = -(1/n) Σ_i cos(z_li, p_li)``; both ``z`` and ``p`` are
    trained (as in the released code) with plain SGD (no momentum) at learning rate ``lr``
    (:func:`pair_sgd_step`). A set stops at the first step at which its mean cosine is
    ``>= 1 - tol``; ``steps`` counts the SGD updates made before that.

    Args:
        z, p: ``(n, d)`` or ``(L, n, d)`` embeddings (``L`` independent sets); rows of norm > 0.
        lr: SGD learning rate (> 0); the paper uses 10.
        tol: convergence tolerance in (0, 1); the paper uses 1e-3.
        max_steps: give up after this many steps (a pair at exactly θ = π never moves: the
            gradient vanishes there); the set is then reported with ``converged = False``.
        progress: tqdm bar over the sets (``None``: only on a terminal).
        desc: label of the progress bar.

    Returns:
        :class:`PairAlignment` (arrays of length ``L``; ``L = 1`` for 2-D inputs).

    Raises:
        ValueError: invalid parameters, shapes, or a zero-norm embedding.
        FloatingPointError: a non-finite cosine during the simulation.
    """
    _check_positive("lr", lr)
    _check_tolerance(tol)
    _check_count("max_steps", max_steps)
    if z.shape != p.shape or z.dim() not in (2, 3):
        raise ValueError(f"z and p must have the same shape (n, d) or (L, n, d), got {tuple(z.shape)} and {tuple(p.shape)}")
    _check_nonzero_rows("z", z)
    _check_nonzero_rows("p", p)
    if z.dim() == 2:
        z, p = z.unsqueeze(0), p.unsqueeze(0)
    L = z.shape[0]
    target = 1.0 - tol
    steps = np.zeros(L, dtype=np.int64)
    init_cos, final_cos, init_norm, final_norm = [], [], np.zeros(L), np.zeros(L)
    with torch.no_grad():
        for l in tqdm(range(L), desc=desc, leave=False, disable=(None if progress is None else not progress)):
            zl, pl = z[l].detach().clone(), p[l].detach().clone()
            init_norm[l] = float(torch.cat([zl, pl]).norm(dim=-1).mean())
            first = None
            while True:
                z_new, p_new, cos = pair_sgd_step(zl, pl, lr)
                mean_cos = float(cos.mean())
                if first is None:
                    first = cos.numpy().copy()
                if not math.isfinite(mean_cos):
                    raise FloatingPointError("non-finite cosine similarity during the pair simulation")
                if mean_cos >= target or steps[l] >= max_steps:
                    break
                zl, pl = z_new, p_new
                steps[l] += 1
            init_cos.append(first)
            final_cos.append(mean_cos)
            final_norm[l] = float(torch.cat([zl, pl]).norm(dim=-1).mean())
    final_cos = np.asarray(final_cos)
    return PairAlignment(steps=steps, converged=final_cos >= target, initial_cos=np.stack(init_cos),
                         final_mean_cos=final_cos, initial_mean_norm=init_norm, final_mean_norm=final_norm)


def random_pairs(n: int, d: int, norm: float, generator: torch.Generator, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` independent pairs of uniformly random directions in ``R^d``, both scaled to ``norm``.

    Args:
        n, d: number of pairs and dimension (>= 1).
        norm: the shared embedding norm (> 0; norm 0 is rejected: cosine undefined).
        generator: torch RNG.

    Returns:
        ``z, p``: ``(n, d)`` each.

    Raises:
        ValueError: invalid parameters.
    """
    _check_count("n", n)
    _check_count("d", d)
    _check_positive("norm", norm)
    z = torch.randn(n, d, generator=generator, dtype=dtype)
    p = torch.randn(n, d, generator=generator, dtype=dtype)
    return norm * z / z.norm(dim=1, keepdim=True), norm * p / p.norm(dim=1, keepdim=True)


def interpolated_pairs(n: int, d: int, interpolation: float, generator: torch.Generator,
                       dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm pairs with a controlled angle (simulation (a), angle sweep; released code).

    ``p = normalize((1 - |a|) r - a z)`` with ``z, r`` uniform on the sphere: ``a → 1`` moves
    ``p`` towards ``-z`` (θ → π), ``a → -1`` towards ``z`` (θ → 0), ``a = 0`` gives θ ≈ π/2.

    Args:
        n, d: number of pairs and dimension (>= 1).
        interpolation: ``a`` in the open interval (-1, 1) (``a = 1`` would put every pair at
            exactly θ = π, a stationary point of the loss where the gradient vanishes).
        generator: torch RNG.

    Returns:
        ``z, p``: ``(n, d)`` unit vectors.

    Raises:
        ValueError: invalid parameters.
    """
    _check_count("n", n)
    _check_count("d", d)
    if not -1.0 < float(interpolation) < 1.0:
        raise ValueError(f"interpolation must lie in the open interval (-1, 1), got {interpolation!r} "
                         "(at 1 every pair starts at θ = π, where the gradient vanishes)")
    z = torch.randn(n, d, generator=generator, dtype=dtype)
    z = z / z.norm(dim=1, keepdim=True)
    r = torch.randn(n, d, generator=generator, dtype=dtype)
    r = r / r.norm(dim=1, keepdim=True)
    p = r * (1.0 - abs(interpolation)) - z * interpolation
    return z, p / p.norm(dim=1, keepdim=True)


def check_pair_simulation(n: int, d: int, lr: float, tol: float, max_steps: int = 200_000,
                          norms: Sequence[float] = (1.0,), interpolations: Sequence[float] = (0.0,)) -> None:
    """Validate the parameters of simulation (a) (:func:`norm_sweep`, :func:`angle_sweep`).

    Raises:
        ValueError: an empty sweep, a norm <= 0 (norm 0 is degenerate), an interpolation outside
            (-1, 1), ``n``, ``d`` or ``max_steps`` not a positive integer, ``lr`` <= 0, or ``tol``
            outside (0, 1); the message names the parameter and its valid range.
    """
    if len(norms) == 0:
        raise ValueError("norms must not be empty")
    if len(interpolations) == 0:
        raise ValueError("interpolations must not be empty")
    for x in norms:
        _check_positive("norm", x)
    for a in interpolations:
        if not -1.0 < float(a) < 1.0:
            raise ValueError(f"interpolation must lie in the open interval (-1, 1), got {a!r}")
    _check_count("n", n)
    _check_count("d", d)
    _check_positive("lr", lr)
    _check_tolerance(tol)
    _check_count("max_steps", max_steps)


def norm_sweep(norms: Sequence[float], n: int = 500, d: int = 20, lr: float = 10.0, tol: float = 1e-3,
               seed: int = 0, max_steps: int = 200_000, progress: Optional[bool] = None) -> pd.DataFrame:
    """Simulation (a), panel 1: steps to align ``n`` random pairs vs their shared norm.

    Args:
        norms: shared norms (each > 0); the paper: 0.25, 0.5, 0.75, 1, 2, ..., 10.
        n, d, lr, tol: as in :func:`steps_to_align` (paper: 500, 20, 10, 1e-3).
        seed: RNG seed of the random pairs (fresh pairs for every norm).
        max_steps, progress: as in :func:`steps_to_align`.

    Returns:
        one row per norm: ``norm, steps, converged, initial_mean_cos, final_mean_cos,
        final_mean_norm, predicted_steps`` (the continuous-time closed form of
        :func:`predicted_steps`).

    Raises:
        ValueError: an invalid parameter (e.g. a norm <= 0), before any compute.
    """
    check_pair_simulation(n, d, lr, tol, max_steps, norms=norms)
    norms = [float(x) for x in norms]
    g = torch.Generator().manual_seed(int(seed))
    pairs = [random_pairs(n, d, x, g) for x in norms]
    res = steps_to_align(torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs]), lr, tol,
                         max_steps, progress, desc="norm sweep")
    pred = [predicted_steps(res.initial_cos[i], x, x, lr, n, tol) for i, x in enumerate(norms)]
    return pd.DataFrame({"norm": norms, "steps": res.steps, "converged": res.converged,
                         "initial_mean_cos": res.initial_cos.mean(1), "final_mean_cos": res.final_mean_cos,
                         "final_mean_norm": res.final_mean_norm, "predicted_steps": pred})


def angle_sweep(interpolations: Sequence[float], n: int = 500, d: int = 20, lr: float = 10.0, tol: float = 1e-3,
                seed: int = 0, max_steps: int = 200_000, progress: Optional[bool] = None) -> pd.DataFrame:
    """Simulation (a), panel 2: steps to align unit-norm pairs vs their initial angle.

    Args:
        interpolations: values ``a`` in (-1, 1) for :func:`interpolated_pairs`; the released
            code uses ``-24/25, ..., 24/25``.
        n, d, lr, tol, seed, max_steps, progress: as in :func:`norm_sweep`.

    Returns:
        one row per interpolation: ``interpolation, initial_angle`` (radians,
        ``arccos`` of the initial mean cosine, as in the released code), ``steps, converged,
        initial_mean_cos, final_mean_cos, predicted_steps``.

    Raises:
        ValueError: an invalid parameter, before any compute.
    """
    check_pair_simulation(n, d, lr, tol, max_steps, interpolations=interpolations)
    inter = [float(a) for a in interpolations]
    g = torch.Generator().manual_seed(int(seed))
    pairs = [interpolated_pairs(n, d, a, g) for a in inter]
    res = steps_to_align(torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs]), lr, tol,
                         max_steps, progress, desc="angle sweep")
    mean_c = res.initial_cos.mean(1)
    pred = [predicted_steps(res.initial_cos[i], 1.0, 1.0, lr, n, tol) for i in range(len(inter))]
    return pd.DataFrame({"interpolation": inter, "initial_angle": np.arccos(np.clip(mean_c, -1, 1)),
                         "steps": res.steps, "converged": res.converged, "initial_mean_cos": mean_c,
                         "final_mean_cos": res.final_mean_cos, "predicted_steps": pred})


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of ``log y = a log x + b`` (the exponent of steps vs norm).

    Args:
        x, y: positive values of equal length >= 2.

    Returns:
        ``exponent`` (a), ``log_intercept`` (b), ``r`` (correlation of the logs), ``stderr`` of a.

    Raises:
        ValueError: fewer than 2 points or non-positive values.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or len(x) != len(y):
        raise ValueError("fit_power_law needs two arrays of equal length >= 2")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("fit_power_law needs positive x and y (log-log fit)")
    r = stats.linregress(np.log(x), np.log(y))
    return {"exponent": float(r.slope), "log_intercept": float(r.intercept), "r": float(r.rvalue),
            "stderr": float(r.stderr)}


def fit_quadratic(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares ``c`` of ``y ≈ c x²`` (the theory curve of the norm sweep).

    Args:
        x, y: arrays of equal length >= 1.

    Returns:
        ``c``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    sol, *_ = np.linalg.lstsq((x ** 2)[:, None], y, rcond=None)
    return float(sol[0])


# --------------------------------------------------------------------------- Simulations (b) and (c)


@contextmanager
def _single_thread():
    """Run torch on one intra-op thread, then restore the previous setting.

    The MLP of simulation (b) is tiny (batches of 128 × 64): a second thread brings nothing,
    and on a loaded 2-core machine thread contention made it several times slower.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@dataclass(frozen=True)
class ImbalanceSetup:
    """Simulation (b): data, model and training of the class-imbalance simulation.

    Defaults follow PAPER.md ("Simulation (b)"); where the paper does not say, they follow the
    released code (``Simulations.ipynb``) and are marked so. Hashable, so that
    :func:`imbalance_simulation` can cache on it. Validated on construction.

    Attributes:
        class_weights: sampling weights of the latent classes (paper 1:2:4:8), each > 0.
        n_samples: total number of points (released code: 2000 = 4 classes × 500); the class
            of every point is drawn with probabilities proportional to ``class_weights``.
        latent_dim: dimension of the latent sphere (paper 10).
        data_dim: observation dimension (paper 64).
        input_scale: factor of the random Gaussian map (paper ×10).
        class_spread: std (per coordinate) of the Gaussian perturbation of each point around
            its class centre before projecting back to the sphere (released code: 1.0).
        hidden_dim, embed_dim: MLP 64-hidden-embed (paper 64-64-10).
        temperature: supervised InfoNCE temperature (released code: 1.0).
        lr, batch_size, epochs: SGD (paper 0.01, 128, 100).
        seeds: number of runs (paper 5); run ``s`` uses seed ``s`` for data, init and batches.

    Raises:
        ValueError: a class weight <= 0, a non-positive size, learning rate or temperature
            (the message names the field and its valid range).
    """

    class_weights: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    n_samples: int = 2000
    latent_dim: int = 10
    data_dim: int = 64
    input_scale: float = 10.0
    class_spread: float = 1.0
    hidden_dim: int = 64
    embed_dim: int = 10
    temperature: float = 1.0
    lr: float = 0.01
    batch_size: int = 128
    epochs: int = 100
    seeds: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if len(self.class_weights) < 2:
            raise ValueError(f"class_weights needs at least 2 classes, got {self.class_weights!r}")
        for i, w in enumerate(self.class_weights):
            if not (math.isfinite(w) and w > 0):
                raise ValueError(f"class_weights[{i}] must be > 0 (valid range: (0, inf)), got {w!r}")
        for name in ("n_samples", "latent_dim", "data_dim", "hidden_dim", "embed_dim", "batch_size", "epochs", "seeds"):
            _check_count(name, getattr(self, name))
        if self.latent_dim < 2:
            raise ValueError(f"latent_dim must be >= 2 (a sphere needs 2 dimensions), got {self.latent_dim!r}")
        if self.n_samples < 2 * len(self.class_weights):
            raise ValueError(f"n_samples must be >= 2 per class ({2 * len(self.class_weights)}), got {self.n_samples}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (InfoNCE needs a partner), got {self.batch_size}")
        for name in ("input_scale", "temperature", "lr"):
            _check_positive(name, getattr(self, name))
        if not (math.isfinite(self.class_spread) and self.class_spread >= 0):
            raise ValueError(f"class_spread must be >= 0 (valid range: [0, inf)), got {self.class_spread!r}")


def spherical_classes(setup: ImbalanceSetup, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic data of simulation (b): imbalanced classes on the latent sphere, observed in R^64.

    As in the released code: the class of each of the ``n_samples`` points is drawn with
    probabilities ``class_weights / sum(class_weights)``; class centres ``μ_c`` are uniform on
    ``S^{latent_dim-1}``; a point of class ``c`` is ``u = normalize(μ_c + class_spread · ε)``,
    ``ε ~ N(0, I)``; the observation is ``x = input_scale · A u`` with a random Gaussian
    ``A ∈ R^{data_dim × latent_dim}`` (``A_ij ~ N(0, 1)``), shared by all points. Points are
    sorted by class.

    Args:
        setup: sizes and constants.
        generator: torch RNG (float32 data).

    Returns:
        ``x``: ``(N, data_dim)``; ``u``: ``(N, latent_dim)`` latent points; ``labels``: ``(N,)``
        int64 class ids (class ``c`` has weight ``class_weights[c]``).
    """
    C, k = len(setup.class_weights), setup.latent_dim
    mu = torch.randn(C, k, generator=generator)
    mu = mu / mu.norm(dim=1, keepdim=True)
    w = torch.tensor(setup.class_weights, dtype=torch.float64)
    labels = torch.multinomial(w / w.sum(), setup.n_samples, replacement=True, generator=generator)
    labels = labels.sort().values
    u = mu[labels] + setup.class_spread * torch.randn(len(labels), k, generator=generator)
    u = u / u.norm(dim=1, keepdim=True)
    A = torch.randn(setup.data_dim, k, generator=generator)
    x = setup.input_scale * u @ A.t()
    return x, u, labels


def make_mlp(setup: ImbalanceSetup) -> nn.Sequential:
    """The MLP of simulation (b): ``Linear(data_dim, hidden) - ReLU - Linear(hidden, embed)``
    (PyTorch default initialisation)."""
    return nn.Sequential(nn.Linear(setup.data_dim, setup.hidden_dim), nn.ReLU(),
                         nn.Linear(setup.hidden_dim, setup.embed_dim))


def class_mean_norms(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> np.ndarray:
    """Mean embedding norm of every class.

    Args:
        z: ``(N, dim)``; labels: ``(N,)`` in ``0..n_classes-1``.

    Returns:
        ``(n_classes,)`` (NaN for an empty class).
    """
    norms = z.norm(dim=1)
    out = torch.full((n_classes,), float("nan"), dtype=norms.dtype)
    for c in range(n_classes):
        m = labels == c
        if bool(m.any()):
            out[c] = norms[m].mean()
    return out.numpy()


def train_imbalance_run(setup: ImbalanceSetup, seed: int, progress: Optional[bool] = False) -> dict[str, np.ndarray]:
    """One run of simulation (b): train the MLP with supervised InfoNCE (one random same-class
    partner per anchor, :func:`embedding_norms.losses.supervised_infonce`) with plain SGD.

    Every epoch shuffles all points into batches of ``batch_size`` (the last one smaller;
    a batch without any same-class pair is skipped). Seeded: data, initialisation, batch order
    and partners come from ``seed``; the global torch RNG is left untouched.

    Args:
        setup: the simulation constants.
        seed: the run's seed.
        progress: tqdm bar over epochs (``None``: only on a terminal).

    Returns:
        ``class_norms``: ``(epochs+1, C)`` mean norm per class after each epoch (row 0:
        initialisation); ``loss``: ``(epochs,)`` mean training loss per epoch;
        ``embeddings``: ``(N, embed_dim)`` final embeddings; ``initial_embeddings``: the same
        at initialisation (the untrained baseline of simulation (c)); ``labels``: ``(N,)``;
        ``latent``: ``(N, latent_dim)``.

    Raises:
        FloatingPointError: the loss becomes non-finite.
    """
    C = len(setup.class_weights)
    g = torch.Generator().manual_seed(int(seed))
    x, u, labels = spherical_classes(setup, g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = make_mlp(setup)
    opt = torch.optim.SGD(model.parameters(), lr=setup.lr)
    hist = np.zeros((setup.epochs + 1, C))
    losses = np.zeros(setup.epochs)
    with torch.no_grad():
        init_emb = model(x)
        hist[0] = class_mean_norms(init_emb, labels, C)
    N = len(labels)
    for epoch in tqdm(range(setup.epochs), desc=f"imbalance seed {seed}", leave=False,
                      disable=(None if progress is None else not progress)):
        perm = torch.randperm(N, generator=g)
        total, count = 0.0, 0
        for start in range(0, N, setup.batch_size):
            idx = perm[start:start + setup.batch_size]
            yb = labels[idx]
            if len(idx) < 2 or len(torch.unique(yb)) == len(yb):
                continue
            z = model(x[idx])
            loss = supervised_infonce(z, yb, setup.temperature, partner="random", generator=g)
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"non-finite loss in the imbalance simulation (seed {seed}, epoch {epoch + 1})")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses[epoch] = total / max(count, 1)
        with torch.no_grad():
            hist[epoch + 1] = class_mean_norms(model(x), labels, C)
    with torch.no_grad():
        emb = model(x).numpy()
    return {"class_norms": hist, "loss": losses, "embeddings": emb, "initial_embeddings": init_emb.numpy(),
            "labels": labels.numpy(), "latent": u.numpy()}


@dataclass(frozen=True)
class ImbalanceResult:
    """All runs of simulation (b) (read-only arrays; use :meth:`history` for a data frame).

    Attributes:
        setup: the constants.
        class_norms: ``(seeds, epochs+1, C)`` mean norm per class after each epoch.
        loss: ``(seeds, epochs)`` mean training loss per epoch.
        embeddings: per seed ``(N, embed_dim)`` final embeddings.
        initial_embeddings: per seed ``(N, embed_dim)`` embeddings at initialisation.
        labels: per seed ``(N,)`` class ids.
    """

    setup: ImbalanceSetup
    class_norms: np.ndarray
    loss: np.ndarray
    embeddings: tuple[np.ndarray, ...] = field(repr=False)
    initial_embeddings: tuple[np.ndarray, ...] = field(repr=False)
    labels: tuple[np.ndarray, ...] = field(repr=False)

    def history(self) -> pd.DataFrame:
        """Long table ``seed, epoch, class, weight, mean_norm`` (a fresh copy)."""
        S, E, C = self.class_norms.shape
        s, e, c = np.meshgrid(np.arange(S), np.arange(E), np.arange(C), indexing="ij")
        w = np.asarray(self.setup.class_weights)[c.ravel()]
        return pd.DataFrame({"seed": s.ravel(), "epoch": e.ravel(), "class": c.ravel(), "weight": w,
                             "mean_norm": self.class_norms.ravel()})


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@lru_cache(maxsize=4)
def imbalance_simulation(setup: ImbalanceSetup, progress: Optional[bool] = None) -> ImbalanceResult:
    """Simulations (b)/(c): all ``setup.seeds`` runs of :func:`train_imbalance_run`, cached.

    The result is cached on ``setup`` (an immutable, hashable dataclass), so the imbalance and
    the density artifacts built in one process share the trained models instead of training
    twice. The arrays of the result are read-only. Runs on one torch thread (see
    :func:`_single_thread`).

    Args:
        setup: the constants (validated when it was constructed).
        progress: tqdm bars (``None``: only on a terminal).

    Returns:
        :class:`ImbalanceResult`.
    """
    with _single_thread():
        runs = [train_imbalance_run(setup, s, progress) for s in
                tqdm(range(setup.seeds), desc="imbalance seeds", leave=False,
                     disable=(None if progress is None else not progress))]
    return ImbalanceResult(setup=setup,
                           class_norms=_readonly(np.stack([r["class_norms"] for r in runs])),
                           loss=_readonly(np.stack([r["loss"] for r in runs])),
                           embeddings=tuple(_readonly(r["embeddings"]) for r in runs),
                           initial_embeddings=tuple(_readonly(r["initial_embeddings"]) for r in runs),
                           labels=tuple(_readonly(r["labels"]) for r in runs))


def knn_distance(embeddings: np.ndarray, k: int = 10) -> np.ndarray:
    """Cosine distance ``1 - cos`` of every point to its ``k``-th nearest neighbour (simulation (c)).

    The point itself is not its own neighbour. Smaller = denser region.

    Args:
        embeddings: ``(N, dim)``, rows of norm > 0.
        k: neighbour rank, 1 <= k < N (paper 10).

    Returns:
        ``(N,)``.

    Raises:
        ValueError: invalid ``k`` or a zero row.
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(embeddings, dtype=float)
    _check_count("k", k)
    if k >= len(X):
        raise ValueError(f"k must be < the number of points ({len(X)}), got {k}")
    if (np.linalg.norm(X, axis=1) == 0).any():
        raise ValueError("an embedding of norm 0 has no direction: cosine distance undefined")
    nn_ = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(X)
    dist, idx = nn_.kneighbors(X)
    # drop the point itself (normally column 0; robust to exact duplicates)
    own = idx == np.arange(len(X))[:, None]
    keep = np.where(own.any(1)[:, None], ~own, np.arange(k + 1)[None, :] < k)
    return dist[keep].reshape(len(X), k)[:, k - 1]
