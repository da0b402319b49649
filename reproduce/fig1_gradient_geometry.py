"""Conceptual figure of Section 3: the geometry of the gradient of a normalised loss.

(a) In a 2-D slice, the gradient field of ``cos(z, y)`` towards a fixed direction ``y``: every
arrow is tangent to the circle through its foot (orthogonal to ``z``, Prop. 3.1) and its length
is ``sin θ / ||z||`` (arrows to scale); a gradient-descent trajectory of one embedding on
``-cos(z, y)`` spirals outwards (Cor. 3.3). (b) The ``1/||z||`` law: ``|∇ cos|`` against ``||z||``
at fixed angles (autograd vs closed form). (c) The trajectory's norm per step against the
Cor. 3.3 recursion ``||z_{t+1}||² = ||z_t||² + γ²||g_t||²``.

Claim checks (exact, closed forms): Prop. 3.1 (orthogonality, size ``sin θ/||z||``, exponent -1
of ``|∇cos|`` vs ``||z||``) on the 2-D grid and on random points in ``d`` dimensions; Cor. 3.3
(the identity, and the norm growing at every step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm

from embedding_norms.plotting import epoch_axis, plain_log_ticks
from embedding_norms.report import ClaimCheck
from embedding_norms.sim_theory import (check_count, check_positive, cosine_gradient, cosine_gradient_field,
                                        descend_cosine, fit_power_law)

PAPER_REF = "Section 3 (conceptual figure; Prop. 3.1, Cor. 3.3)"
TITLE = "Gradient geometry of a normalised loss: orthogonal, 1/‖z‖ in size, norm grows"
CLAIMS = ("prop3.1", "cor3.3")
VECTOR = "an embedding z itself (closed forms and autograd; no network)"

LAW_ANGLES = (30, 60, 90)


@dataclass(frozen=True)
class Params:
    """Scale of the figure (the same for every profile: it costs well under a second).

    Attributes:
        direction: the fixed 2-D ``y``; grid_extent, grid_step: the field's grid ``[-e, e]²``;
        min_norm: no arrows inside this radius; start, lr, steps: the trajectory (z_0, γ, steps);
        check_dim, check_points, seed: Prop. 3.1 is also checked on random points in ``R^check_dim``.
    """

    direction: tuple[float, ...] = (1.0, 0.0)
    grid_extent: float = 2.0
    grid_step: float = 0.25
    min_norm: float = 0.45
    start: tuple[float, ...] = (-1.0, 0.35)
    lr: float = 0.6
    steps: int = 15
    check_dim: int = 20
    check_points: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.direction) != 2 or len(self.start) != 2:
            raise ValueError(f"direction and start must be 2-D vectors, got {self.direction!r}, {self.start!r}")
        check_positive("norm of direction", math.hypot(*self.direction))
        check_positive("norm of start", math.hypot(*self.start))
        for name in ("grid_extent", "grid_step", "lr"):
            check_positive(name, getattr(self, name))
        if not self.min_norm >= 0:
            raise ValueError(f"min_norm must be >= 0, got {self.min_norm!r}")
        check_count("steps", self.steps)
        check_count("check_dim", self.check_dim, 2)
        check_count("check_points", self.check_points)


def _random_points(p: Params) -> pd.DataFrame:
    """Prop. 3.1 on random ``z`` (norms log-uniform in [0.05, 20]) and ``y`` in ``R^check_dim``."""
    g = torch.Generator().manual_seed(p.seed)
    z = torch.randn(p.check_points, p.check_dim, generator=g, dtype=torch.float64)
    scale = torch.empty(p.check_points, 1, dtype=torch.float64).uniform_(np.log(0.05), np.log(20.0), generator=g)
    z = z / z.norm(dim=1, keepdim=True) * torch.exp(scale)
    y = torch.randn(p.check_points, p.check_dim, generator=g, dtype=torch.float64)
    grad = cosine_gradient(z, y)
    zn = z.norm(dim=1)
    cos = (z * y).sum(1) / (zn * y.norm(dim=1))
    return pd.DataFrame({"norm": zn.numpy(), "sin": torch.sqrt((1 - cos ** 2).clamp_min(0)).numpy(),
                         "grad_norm": grad.norm(dim=1).numpy(),
                         "orthogonality": ((grad * z).sum(1) / (grad.norm(dim=1) * zn)).numpy()})


def frames(runs, p: Params) -> dict[str, pd.DataFrame]:
    """The trajectory (main table), the 2-D field, the 1/‖z‖ law and the random points."""
    axis = np.arange(-p.grid_extent, p.grid_extent + p.grid_step / 2, p.grid_step)
    field = cosine_gradient_field(p.direction, axis, axis, min_norm=p.min_norm)
    traj = descend_cosine(p.start, p.direction, p.lr, p.steps)
    y = np.asarray(p.direction, float)
    yh = y / np.linalg.norm(y)
    perp = np.array([-yh[1], yh[0]])
    norms = np.geomspace(0.1, 10.0, 25)
    law = []
    for deg in LAW_ANGLES:
        th = np.deg2rad(deg)
        pts = torch.as_tensor(np.outer(norms, np.cos(th) * yh + np.sin(th) * perp))
        g = cosine_gradient(pts, torch.as_tensor(y).expand(len(pts), 2)).norm(dim=1).numpy()
        law.append(pd.DataFrame({"angle_deg": deg, "norm": norms, "grad_norm": g, "closed_form": np.sin(th) / norms}))
    gsq = (traj["grad"] ** 2).sum(1)
    sq = traj["norm"] ** 2
    Z = traj["z"]
    main = pd.DataFrame({"step": np.arange(len(Z)), "z1": Z[:, 0], "z2": Z[:, 1], "norm": traj["norm"],
                         "norm_cor33": np.sqrt(sq[0] + p.lr ** 2 * np.concatenate([[0.0], np.cumsum(gsq)])),
                         "cos": traj["cos"], "grad_norm": np.concatenate([np.sqrt(gsq), [np.nan]])})
    return {"": main, "_field": field, "_law": pd.concat(law, ignore_index=True), "_random": _random_points(p)}


def _exponents(law: pd.DataFrame) -> dict[int, float]:
    return {int(a): fit_power_law(g.norm, g.grad_norm)["exponent"] for a, g in law.groupby("angle_deg")}


def figures(fr: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """The three panels (see the module docstring)."""
    field, traj, law = fr["_field"], fr[""], fr["_law"]
    yh = np.asarray(p.direction, float) / np.linalg.norm(p.direction)
    ext, step = p.grid_extent, p.grid_step
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 5.0), gridspec_kw={"width_ratios": [1.35, 1, 1]})
    ax = axes[0]
    scale = field["grad_norm"].max() / (1.2 * step)  # the longest arrow is 1.2 grid steps; all to scale
    q = ax.quiver(field.x, field.y, field.gx, field.gy, field.grad_norm, angles="xy", scale_units="xy",
                  scale=scale, cmap="plasma_r", norm=LogNorm(), width=0.0055, headwidth=3.5, headlength=4,
                  headaxislength=3.5, zorder=2)
    ax.grid(False)
    cbar = fig.colorbar(q, ax=ax, fraction=0.046, pad=0.02)
    cbar.set_label(r"$|\nabla_z \cos(z, y)| = \sin\theta / \|z\|$")
    plain_log_ticks(cbar.ax, "y")
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="black", lw=2.2, label="unit circle: all the loss sees")
    for r, ls in ((traj.norm.iloc[0], ":"), (traj.norm.iloc[-1], "--")):
        ax.plot(r * np.cos(t), r * np.sin(t), color="tab:red", lw=1, ls=ls, alpha=0.7)
    ax.annotate("", xy=1.9 * yh, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color="tab:blue", lw=2.5))
    ax.text(*(1.93 * yh + np.array([0.0, 0.08])), r"$y$", color="tab:blue", fontsize=13, ha="center")
    Z = traj[["z1", "z2"]].to_numpy()
    ax.plot(Z[:, 0], Z[:, 1], "-o", color="tab:red", ms=4, lw=1.5, label=rf"gradient descent on $-\cos(z,y)$, $\gamma={p.lr}$")
    Zh = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    ax.plot(Zh[:, 0], Zh[:, 1], "o", color="tab:orange", ms=3.5, label=r"its projection $z/\|z\|$")
    ax.annotate(r"$z_0$", Z[0], xytext=(-14, 6), textcoords="offset points", color="tab:red")
    ax.annotate(rf"$z_{{{len(Z) - 1}}}$", Z[-1], xytext=(4, 6), textcoords="offset points", color="tab:red")
    ax.set_xlim(-ext - 0.15, ext + 0.15)
    ax.set_ylim(-ext - 0.15, ext + 0.15)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$z_1$")
    ax.set_ylabel(r"$z_2$")
    ax.set_title("(a) gradient field of cos(z, y) (arrows to scale)\n"
                 f"norm grows {traj.norm.iloc[0]:.2f} → {traj.norm.iloc[-1]:.2f} (dotted → dashed circle)")
    ax.legend(loc="lower left", fontsize="x-small", framealpha=0.9)

    ax = axes[1]
    ex = _exponents(law)
    pal = plt.get_cmap("viridis")(np.linspace(0.1, 0.8, len(ex)))
    for (deg, g), c in zip(law.groupby("angle_deg"), pal):
        ax.loglog(g.norm, g.closed_form, color=c, lw=1.5,
                  label=rf"$\theta={deg}°$: $\sin\theta/\|z\|$ (fit slope {ex[int(deg)]:.3f})")
        ax.loglog(g.norm, g.grad_norm, "o", color=c, ms=4, mfc="none")
    ax.set_xlabel(r"$\|z\|$")
    ax.set_ylabel(r"$|\nabla_z \cos(z, y)|$")
    plain_log_ticks(ax, "x")
    plain_log_ticks(ax, "y")
    ax.set_title("(b) Prop. 3.1: gradient size ∝ 1/‖z‖\n(circles: autograd; lines: closed form)")
    ax.legend(fontsize="x-small")

    ax = axes[2]
    ax.plot(traj.step, traj.norm, "o", color="tab:red", ms=5, mfc="none", label=r"$\|z_t\|$ (gradient descent)")
    ax.plot(traj.step, traj.norm_cor33, "-", color="tab:red", lw=1.2,
            label=r"Cor. 3.3: $\sqrt{\|z_0\|^2 + \gamma^2 \sum_s \|g_s\|^2}$")
    epoch_axis(ax, "step t")
    ax.set_ylabel("embedding norm", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(traj.step, traj.cos, "--", color="grey", lw=1.2, label=r"$\cos(z_t, y)$ (right axis)")
    ax2.set_ylabel(r"$\cos(z_t, y)$", color="grey")
    ax2.set_ylim(-1.05, 1.05)
    ax2.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize="x-small")
    ax.set_title("(c) Cor. 3.3: every step grows the norm")
    fig.tight_layout()
    return {"": fig}


def checks(fr: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Exact checks of Prop. 3.1 and Cor. 3.3 (deterministic: closed forms, no seeds)."""
    field, rnd, traj = fr["_field"], fr["_random"], fr[""]
    ortho = max(float(field.orthogonality.abs().max()), float(rnd.orthogonality.abs().max()))
    size_err = max(float((field.grad_norm * field.norm - np.sin(field.angle)).abs().max()),
                   float((rnd.grad_norm * rnd.norm - rnd.sin).abs().max()))
    ex = _exponents(fr["_law"])
    worst = max(ex.values(), key=lambda e: abs(e + 1))
    sq, gsq = traj.norm.to_numpy() ** 2, traj.grad_norm.to_numpy()[:-1] ** 2
    identity_err = float((np.abs(sq[1:] - (sq[:-1] + p.lr ** 2 * gsq)) / sq[1:]).max())
    growth = np.diff(traj.norm.to_numpy())
    where = f"2-D grid and {p.check_points} random points in d={p.check_dim}"
    return [
        ClaimCheck.exact("prop3.1", f"gradient of cos(z, y) (autograd) is orthogonal to z: {where}",
                         "max abs cos∠(∇cos, z)", ortho, "< 1e-9", ortho < 1e-9),
        ClaimCheck.exact("prop3.1", f"size of the gradient is sin θ / ‖z‖ ({where})", "max abs(‖∇cos‖·‖z‖ − sin θ)",
                         size_err, "< 1e-9", size_err < 1e-9),
        ClaimCheck.exact("prop3.1", "log-log slope of ‖∇cos‖ against ‖z‖ (‖z‖ = 0.1 … 10) at θ = 30°, 60°, 90°",
                         "fitted exponent (worst of 3)", worst, "within -1 ± 1e-6", abs(worst + 1) < 1e-6,
                         detail=", ".join(f"{a}°: {e:.8f}" for a, e in ex.items())),
        ClaimCheck.exact("cor3.3", f"one gradient step on -cos(z, y) (autograd) satisfies ‖z − γg‖² = ‖z‖² + γ²‖g‖² "
                         f"({p.steps} steps, γ = {p.lr})", "max relative error", identity_err, "< 1e-9",
                         identity_err < 1e-9),
        ClaimCheck.exact("cor3.3", "the norm grows at every step of the trajectory", "final / initial norm",
                         float(traj.norm.iloc[-1] / traj.norm.iloc[0]), "> 1 and every step's Δ‖z‖ > 0",
                         bool((growth > 0).all()), detail=f"smallest step growth {growth.min():.3g}"),
    ]


if __name__ == "__main__":
    import sys
    from reproduce.runner import main
    raise SystemExit(main(["fig1_gradient_geometry", *sys.argv[1:]]))
