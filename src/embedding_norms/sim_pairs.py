"""Simulation (a) of Section 3: gradient descent directly on embedding pairs (no network).

``n`` pairs ``(z_i, p_i)`` in ``R^d`` are trained with plain SGD on ``-mean_i cos(z_i, p_i)`` until
the mean cosine similarity reaches ``1 - tol`` (released code: ``Simulations.ipynb``, cells 1-2).
:func:`norm_sweep` counts the steps against the shared norm (random pairs, θ ≈ π/2),
:func:`angle_sweep` against the initial angle (unit norm, partners interpolated towards ``-z``).

The constants are a :class:`PairSetup`, validated once when it is constructed; the sweeps validate
only their own sweep values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .sim_theory import check_nonzero_rows, check_count, check_positive, check_tolerance, predicted_steps


@dataclass(frozen=True)
class PairSetup:
    """Constants of simulation (a) (PAPER.md "Simulation (a)"; released code).

    Attributes:
        n: pairs per set (paper 500); the loss averages over them.
        d: dimension (paper 20).
        lr: SGD learning rate (paper 10).
        tol: stop when the mean cosine is ``>= 1 - tol`` (paper 1e-3).
        max_steps: give up after this many steps (a pair at exactly θ = π never moves).

    Raises:
        ValueError: ``n``, ``d``, ``max_steps`` not integers >= 1, ``lr`` <= 0 or ``tol`` outside
            (0, 1); the message names the parameter.
    """

    n: int = 500
    d: int = 20
    lr: float = 10.0
    tol: float = 1e-3
    max_steps: int = 200_000

    def __post_init__(self) -> None:
        for name in ("n", "d", "max_steps"):
            check_count(name, getattr(self, name))
        check_positive("lr", self.lr)
        check_tolerance(self.tol)


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
    """One plain-SGD step on ``L = -(1/n) Σ_i cos(z_i, p_i)`` by the closed form of Prop. 3.1.

    ``∂L/∂z_i = -(p̂_i - cos θ_i ẑ_i) / (n ||z_i||)`` (and symmetrically for ``p_i``); ~4x faster
    than autograd, which matters for the ~40 000 steps of the norm sweep. Inputs are not checked
    (inner loop).

    Args:
        z, p: ``(n, d)``, rows of norm > 0.
        lr: learning rate γ.

    Returns:
        ``z_new, p_new`` (``(n, d)``) and ``cos``: ``(n,)`` the cosines *before* the step.
    """
    n = z.shape[0]
    nz, np_ = z.norm(dim=-1, keepdim=True), p.norm(dim=-1, keepdim=True)
    zh, ph = z / nz, p / np_
    cos = (zh * ph).sum(-1, keepdim=True)
    step = lr / n
    return z + step * (ph - cos * zh) / nz, p + step * (zh - cos * ph) / np_, cos.squeeze(-1)


def steps_to_align(z: torch.Tensor, p: torch.Tensor, setup: PairSetup, progress: Optional[bool] = False,
                   desc: str = "pairs") -> PairAlignment:
    """SGD on the embeddings themselves until the pairs of each set align.

    Both ``z`` and ``p`` are trained (as released) with :func:`pair_sgd_step` at ``setup.lr``.
    A set stops at the first step at which its mean cosine is ``>= 1 - setup.tol``; ``steps``
    counts the updates made before that (at most ``setup.max_steps``; then ``converged`` False).

    Args:
        z, p: ``(n, d)`` or ``(L, n, d)`` (``L`` independent sets); rows of norm > 0.
        setup: the constants (validated).
        progress: tqdm bar over the sets (``None``: only on a terminal).
        desc: label of the progress bar.

    Returns:
        :class:`PairAlignment` (length ``L``; 1 for 2-D inputs).

    Raises:
        ValueError: mismatched shapes or a zero-norm row.
        FloatingPointError: a non-finite cosine during the simulation.
    """
    if z.shape != p.shape or z.dim() not in (2, 3):
        raise ValueError(f"z and p must have the same shape (n, d) or (L, n, d), got {tuple(z.shape)} and {tuple(p.shape)}")
    check_nonzero_rows("z", z)
    check_nonzero_rows("p", p)
    if z.dim() == 2:
        z, p = z.unsqueeze(0), p.unsqueeze(0)
    L, target = z.shape[0], 1.0 - setup.tol
    steps = np.zeros(L, dtype=np.int64)
    init_cos, final_cos, init_norm, final_norm = [], np.zeros(L), np.zeros(L), np.zeros(L)
    with torch.no_grad():
        for l in tqdm(range(L), desc=desc, leave=False, disable=(None if progress is None else not progress)):
            zl, pl = z[l].clone(), p[l].clone()
            init_norm[l] = float(torch.cat([zl, pl]).norm(dim=-1).mean())
            first = None
            while True:
                z_new, p_new, cos = pair_sgd_step(zl, pl, setup.lr)
                mean_cos = float(cos.mean())
                if first is None:
                    first = cos.numpy().copy()
                if not math.isfinite(mean_cos):
                    raise FloatingPointError("non-finite cosine similarity during the pair simulation")
                if mean_cos >= target or steps[l] >= setup.max_steps:
                    break
                zl, pl = z_new, p_new
                steps[l] += 1
            init_cos.append(first)
            final_cos[l] = mean_cos
            final_norm[l] = float(torch.cat([zl, pl]).norm(dim=-1).mean())
    return PairAlignment(steps=steps, converged=final_cos >= target, initial_cos=np.stack(init_cos),
                         final_mean_cos=final_cos, initial_mean_norm=init_norm, final_mean_norm=final_norm)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def check_norms(norms: Sequence[float]) -> None:
    """Raise ValueError unless ``norms`` is a non-empty list of finite numbers > 0 (norm 0 is degenerate)."""
    if len(norms) == 0:
        raise ValueError("norms must not be empty")
    for x in norms:
        check_positive("norm", x)


def check_interpolations(interpolations: Sequence[float]) -> None:
    """Raise ValueError unless ``interpolations`` is non-empty and every value lies in (-1, 1)
    (at 1 every pair starts at θ = π, where the gradient vanishes)."""
    if len(interpolations) == 0:
        raise ValueError("interpolations must not be empty")
    for a in interpolations:
        if not -1.0 < float(a) < 1.0:
            raise ValueError(f"interpolation must lie in the open interval (-1, 1), got {a!r} "
                             "(at 1 every pair starts at θ = π, where the gradient vanishes)")


def norm_sweep(setup: PairSetup, norms: Sequence[float], seed: int = 0, progress: Optional[bool] = None) -> pd.DataFrame:
    """Steps to align ``setup.n`` random pairs (uniform directions, θ ≈ π/2) against their shared norm.

    Args:
        setup: the constants.
        norms: shared norms, each > 0 (paper 0.25, 0.5, 0.75, 1, 2, ..., 10); fresh pairs per norm.
        seed: RNG seed of the pairs.
        progress: tqdm bars (``None``: only on a terminal).

    Returns:
        one row per norm: ``norm, steps, converged, initial_mean_cos, final_mean_cos,
        final_mean_norm, predicted_steps`` (:func:`~embedding_norms.sim_theory.predicted_steps`).

    Raises:
        ValueError: an invalid norm, before any compute.
    """
    check_norms(norms)
    norms = [float(x) for x in norms]
    g = torch.Generator().manual_seed(int(seed))
    shape = (len(norms), setup.n, setup.d)
    z = _unit(torch.randn(shape, generator=g, dtype=torch.float64))
    p = _unit(torch.randn(shape, generator=g, dtype=torch.float64))
    r = torch.tensor(norms, dtype=torch.float64).view(-1, 1, 1)
    res = steps_to_align(r * z, r * p, setup, progress, desc="norm sweep")
    pred = [predicted_steps(res.initial_cos[i], x, x, setup.lr, setup.n, setup.tol) for i, x in enumerate(norms)]
    return pd.DataFrame({"norm": norms, "steps": res.steps, "converged": res.converged,
                         "initial_mean_cos": res.initial_cos.mean(1), "final_mean_cos": res.final_mean_cos,
                         "final_mean_norm": res.final_mean_norm, "predicted_steps": pred})


def angle_sweep(setup: PairSetup, interpolations: Sequence[float], seed: int = 0,
                progress: Optional[bool] = None) -> pd.DataFrame:
    """Steps to align unit-norm pairs against their initial angle (released code).

    For each ``a``: ``p = normalize((1 - |a|) r - a z)`` with ``z, r`` uniform on the sphere, so
    ``a → 1`` moves ``p`` towards ``-z`` (θ → π), ``a → -1`` towards ``z``, ``a = 0`` gives θ ≈ π/2.

    Args:
        setup: the constants.
        interpolations: values ``a`` in (-1, 1) (released: ``-24/25, ..., 24/25``).
        seed: RNG seed of the pairs.
        progress: tqdm bars.

    Returns:
        one row per ``a``: ``interpolation, initial_angle`` (radians, arccos of the initial mean
        cosine, as released), ``steps, converged, initial_mean_cos, final_mean_cos, predicted_steps``.

    Raises:
        ValueError: an interpolation outside (-1, 1), before any compute.
    """
    check_interpolations(interpolations)
    a = torch.tensor([float(v) for v in interpolations], dtype=torch.float64).view(-1, 1, 1)
    g = torch.Generator().manual_seed(int(seed))
    shape = (len(a), setup.n, setup.d)
    z = _unit(torch.randn(shape, generator=g, dtype=torch.float64))
    r = _unit(torch.randn(shape, generator=g, dtype=torch.float64))
    p = _unit(r * (1.0 - a.abs()) - z * a)
    res = steps_to_align(z, p, setup, progress, desc="angle sweep")
    mean_c = res.initial_cos.mean(1)
    pred = [predicted_steps(res.initial_cos[i], 1.0, 1.0, setup.lr, setup.n, setup.tol) for i in range(len(a))]
    return pd.DataFrame({"interpolation": a.view(-1).numpy(), "initial_angle": np.arccos(np.clip(mean_c, -1, 1)),
                         "steps": res.steps, "converged": res.converged, "initial_mean_cos": mean_c,
                         "final_mean_cos": res.final_mean_cos, "predicted_steps": pred})
