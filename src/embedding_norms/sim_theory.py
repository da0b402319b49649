"""Closed forms of Section 3 (Figure 1, Prop. 3.1, Cor. 3.3) and the continuous-time prediction of
simulation (a); plus the small validators the simulation modules share.

* Prop. 3.1: ``∂ cos(z, y) / ∂ z = (ŷ - cos θ ẑ) / ||z||``: orthogonal to ``z``, of size ``sin θ / ||z||``.
* Cor. 3.3: a gradient step on a loss that sees ``z`` only through ``z/||z||`` grows the norm,
  ``||z - γ g||² = ||z||² + γ² ||g||²``.
* :func:`predicted_steps`: how many SGD steps a set of positive pairs needs to align when the
  angle follows ``dθ/dt = -k sin θ`` (Prop. 3.1 integrated).

Norm 0 is rejected everywhere: the cosine similarity is undefined there (0/0).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import optimize, stats

# --------------------------------------------------------------------------- validators


def check_positive(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0 (the message names ``name``)."""
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        zero = False
        try:
            zero = float(value) == 0.0
        except (TypeError, ValueError):
            pass
        extra = (" (norm 0 is degenerate: the cosine similarity z·y / (||z|| ||y||) is undefined)"
                 if "norm" in name and zero else "")
        raise ValueError(f"{name} must be a finite number > 0 (valid range: (0, inf)), got {value!r}{extra}")


def check_count(name: str, value: int, minimum: int = 1) -> None:
    """Raise ValueError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_tolerance(tol: float) -> None:
    """Raise ValueError unless ``0 < tol < 1``."""
    try:
        ok = 0.0 < float(tol) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"tol must lie in the open interval (0, 1), got {tol!r}")


def check_nonzero_rows(name: str, x: torch.Tensor) -> None:
    """Raise ValueError if ``x`` has non-finite values or a row of norm 0 (cosine undefined)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values")
    if bool((x.norm(dim=-1) == 0).any()):
        raise ValueError(f"{name} has a row of norm 0: the cosine similarity is undefined there "
                         f"(valid: every embedding has norm > 0)")


# --------------------------------------------------------------------------- Prop. 3.1 and Cor. 3.3


def cosine_gradient(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of ``cos(z, y)`` w.r.t. ``z``, by automatic differentiation (Prop. 3.1).

    Args:
        z: embeddings ``(..., d)``, every row of norm > 0.
        y: fixed directions ``(..., d)`` (broadcast against ``z``), rows of norm > 0.

    Returns:
        ``(..., d)`` (dtype of ``z``); by Prop. 3.1 ``(ŷ - cos θ ẑ) / ||z||``.

    Raises:
        ValueError: a row of ``z`` or ``y`` of norm 0 (cosine undefined) or non-finite values.
    """
    check_nonzero_rows("z", z)
    check_nonzero_rows("y", y)
    with torch.enable_grad():
        zz = z.detach().clone().requires_grad_(True)
        cos = (zz * y).sum(-1) / (zz.norm(dim=-1) * y.norm(dim=-1))
        (grad,) = torch.autograd.grad(cos.sum(), zz)
    return grad


def cosine_gradient_field(direction: Sequence[float], xs: np.ndarray, ys: np.ndarray,
                          min_norm: float = 0.0) -> pd.DataFrame:
    """The gradient field of ``cos(z, y)`` in a 2-D plane (the conceptual Figure 1, Prop. 3.1).

    Args:
        direction: the fixed 2-D vector ``y`` (norm > 0).
        xs, ys: 1-D grid coordinates; the field is evaluated at every ``(x, y)`` pair.
        min_norm: grid points with ``||z|| <= min_norm`` are left out (>= 0; the field grows as
            ``1/||z||`` near the origin and is undefined at 0).

    Returns:
        one row per grid point: ``x, y, gx, gy`` (gradient by autograd), ``norm`` = ||z||,
        ``angle`` = θ [rad], ``grad_norm``, ``sin_over_norm`` = sin θ / ||z|| (closed form),
        ``orthogonality`` = cos of the angle between the gradient and z.

    Raises:
        ValueError: ``direction`` not 2-D or of norm 0; ``min_norm`` < 0.
    """
    y = torch.as_tensor(direction, dtype=torch.float64)
    if y.shape != (2,):
        raise ValueError(f"direction must be a 2-D vector, got shape {tuple(y.shape)}")
    check_positive("norm of direction", float(y.norm()))
    if not min_norm >= 0:
        raise ValueError(f"min_norm must be >= 0, got {min_norm!r}")
    gx, gy = np.meshgrid(np.asarray(xs, float), np.asarray(ys, float), indexing="xy")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    pts = pts[np.linalg.norm(pts, axis=1) > min_norm]
    z = torch.as_tensor(pts, dtype=torch.float64)
    g = cosine_gradient(z, y.expand_as(z))
    zn = z.norm(dim=1)
    angle = torch.arccos(((z @ y) / (zn * y.norm())).clamp(-1, 1))
    gn = g.norm(dim=1)
    ortho = (g * z).sum(1) / (gn * zn).clamp_min(1e-300)
    return pd.DataFrame({"x": pts[:, 0], "y": pts[:, 1], "gx": g[:, 0].numpy(), "gy": g[:, 1].numpy(),
                         "norm": zn.numpy(), "angle": angle.numpy(), "grad_norm": gn.numpy(),
                         "sin_over_norm": (torch.sin(angle) / zn).numpy(), "orthogonality": ortho.numpy()})


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
    check_positive("lr", lr)
    check_count("steps", steps)
    z = torch.as_tensor(z0, dtype=torch.float64).clone()
    y = torch.as_tensor(direction, dtype=torch.float64)
    if z.dim() != 1 or z.shape != y.shape:
        raise ValueError(f"z0 and direction must be vectors of the same length, got {tuple(z.shape)} and {tuple(y.shape)}")
    check_positive("norm of z0", float(z.norm()))
    check_positive("norm of direction", float(y.norm()))
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


# --------------------------------------------------------------------------- simulation (a), closed form


def predicted_steps(initial_cos: np.ndarray, norm_z: float, norm_p: float, lr: float, n: int, tol: float) -> float:
    """Continuous-time prediction of the steps a set of positive pairs needs to align.

    With ``L = -(1/n) Σ_i cos(z_i, p_i)`` and SGD at learning rate γ, each step rotates ``z_i``
    towards ``p_i`` by ``(γ/n) sin θ_i / ||z_i||²`` and ``p_i`` towards ``z_i`` by
    ``(γ/n) sin θ_i / ||p_i||²`` (Prop. 3.1), so ``dθ/dt = -k sin θ`` with
    ``k = (γ/n)(1/||z||² + 1/||p||²)`` and ``tan(θ(t)/2) = tan(θ_0/2) e^{-k t}``. The returned
    ``t`` solves ``mean_i cos θ_i(t) = 1 - tol``; for equal norms ρ, ``t ∝ n ρ² / (2γ)`` (the
    quadratic law of Section 3). Norm growth (Cor. 3.3) and the discreteness of steps are neglected.

    Args:
        initial_cos: ``(n_pairs,)`` initial cosines in ``[-1, 1]``.
        norm_z, norm_p: the norms (> 0).
        lr: γ > 0.
        n: the number of pairs the loss averages over (>= 1).
        tol: tolerance in (0, 1).

    Returns:
        steps (real); 0 if already aligned; ``inf`` when unreachable (pairs at exactly θ = π).

    Raises:
        ValueError: invalid parameters.
    """
    check_positive("norm_z", norm_z)
    check_positive("norm_p", norm_p)
    check_positive("lr", lr)
    check_count("n", n)
    check_tolerance(tol)
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


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of ``log y = a log x + b``.

    Args:
        x, y: positive values of equal length >= 2.

    Returns:
        ``exponent`` (a), ``log_intercept`` (b), ``r`` (correlation of the logs), ``stderr`` of a.

    Raises:
        ValueError: fewer than 2 points, unequal lengths or non-positive values.
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
    """Least-squares ``c`` of ``y ≈ c x²`` (the theory curve of the norm sweep); ``x, y`` of equal
    length >= 1."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sol, *_ = np.linalg.lstsq((x ** 2)[:, None], y, rcond=None)
    return float(sol[0])
