"""Conceptual figure of Section 3: the geometry of the gradient of a normalised loss.

(a) In a 2-D slice, the gradient field of ``cos(z, y)`` towards a fixed direction ``y``: every
arrow is tangent to the circle through its foot (orthogonal to ``z``, Prop. 3.1) and its length
is ``sin θ / ||z||`` (arrow lengths are drawn to scale); a gradient-descent trajectory of one
embedding on ``-cos(z, y)`` spirals outwards (Cor. 3.3); the unit circle is all the loss sees.
(b) The ``1/||z||`` law: ``|∇ cos|`` against ``||z||`` at fixed angles (autograd vs closed form).
(c) The trajectory's norm per step against the Cor. 3.3 recursion ``||z_{t+1}||² = ||z_t||² + γ²||g_t||²``.

Claim checks: Prop. 3.1 (orthogonality, size ``sin θ/||z||``, exponent -1 of ``|∇cos|`` vs
``||z||``) on the 2-D grid and on random points in ``d`` dimensions; Cor. 3.3 (the identity,
exactly, and the norm growing at every step).

Usage: ``python reproduce/fig1_gradient_geometry.py --profile quick`` (or ``python -m reproduce fig1_gradient_geometry``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm

from embedding_norms import simulate as sim
from reproduce.common import Artifact, BuildContext, Plan, main_single, no_runs

#: Scale parameters (the same for every profile: this figure costs well under a second).
DEFAULTS = {
    "direction": [1.0, 0.0],     # the fixed y of the 2-D slice
    "grid_extent": 2.0,          # field drawn on [-extent, extent]^2
    "grid_step": 0.25,
    "min_norm": 0.45,            # no arrows inside this radius (the field grows as 1/||z||)
    "start": [-1.0, 0.35],       # the trajectory's z_0 (θ_0 ≈ 161°)
    "lr": 0.6,                   # its step size γ
    "steps": 15,
    "check_dim": 20,             # Prop. 3.1 is also checked on random points in this dimension
    "check_points": 2000,
    "seed": 0,
}


def _check_points(dim: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``z`` (norms log-uniform in [0.05, 20]) and ``y`` in ``R^dim`` (float64)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(count, dim, generator=g, dtype=torch.float64)
    z = z / z.norm(dim=1, keepdim=True) * torch.exp(torch.empty(count, 1, dtype=torch.float64).uniform_(
        np.log(0.05), np.log(20.0), generator=g))
    y = torch.randn(count, dim, generator=g, dtype=torch.float64)
    return z, y


def check(plan: Plan) -> None:
    """Validate the parameters before any compute: the field's direction and radius, and the
    trajectory (both cost microseconds at the configured sizes; ValueError names the parameter)."""
    p = plan.params("fig1_gradient_geometry", DEFAULTS)
    if not (p["grid_extent"] > 0 and p["grid_step"] > 0):
        raise ValueError(f"grid_extent and grid_step must be > 0, got {p['grid_extent']!r}, {p['grid_step']!r}")
    sim.cosine_gradient_field(p["direction"], np.zeros(1), np.ones(1), min_norm=p["min_norm"])
    sim.descend_cosine(p["start"], p["direction"], p["lr"], p["steps"])
    if p["check_dim"] < 2 or p["check_points"] < 1:
        raise ValueError(f"check_dim must be >= 2 and check_points >= 1, got {p['check_dim']!r}, {p['check_points']!r}")


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    p = ctx.params(DEFAULTS)
    y = np.asarray(p["direction"], float)
    ext, step = float(p["grid_extent"]), float(p["grid_step"])
    axis = np.arange(-ext, ext + step / 2, step)

    # ---------------------------------------------------------------- data
    field = sim.cosine_gradient_field(y, axis, axis, min_norm=p["min_norm"])
    traj = sim.descend_cosine(p["start"], y, p["lr"], p["steps"])
    z_rand, y_rand = _check_points(p["check_dim"], p["check_points"], p["seed"])
    g_rand = sim.cosine_gradient(z_rand, y_rand)
    zn = z_rand.norm(dim=1)
    cos_r = (z_rand * y_rand).sum(1) / (zn * y_rand.norm(dim=1))
    sin_r = torch.sqrt((1 - cos_r ** 2).clamp_min(0))
    ortho_rand = ((g_rand * z_rand).sum(1) / (g_rand.norm(dim=1) * zn)).abs()
    size_err_rand = (g_rand.norm(dim=1) * zn - sin_r).abs()

    # the 1/||z|| law at fixed angles
    law_norms = np.geomspace(0.1, 10.0, 25)
    law_rows = []
    yh = y / np.linalg.norm(y)
    perp = np.array([-yh[1], yh[0]])
    for deg in (30, 60, 90):
        th = np.deg2rad(deg)
        pts = np.outer(law_norms, np.cos(th) * yh + np.sin(th) * perp)
        g = sim.cosine_gradient(torch.as_tensor(pts), torch.as_tensor(y).expand(len(pts), 2)).norm(dim=1).numpy()
        fit = sim.fit_power_law(law_norms, g)
        law_rows.append({"angle_deg": deg, "norms": law_norms, "grad_norm": g, "closed_form": np.sin(th) / law_norms,
                         "exponent": fit["exponent"]})

    # Cor. 3.3 along the trajectory
    sq = traj["norm"] ** 2
    gsq = (traj["grad"] ** 2).sum(1)
    predicted_sq = sq[0] + p["lr"] ** 2 * np.concatenate([[0.0], np.cumsum(gsq)])
    identity_err = np.abs(sq[1:] - (sq[:-1] + p["lr"] ** 2 * gsq)) / sq[1:]

    # ---------------------------------------------------------------- figure
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 5.0), gridspec_kw={"width_ratios": [1.35, 1, 1]})
    ax = axes[0]
    scale = field["grad_norm"].max() / (1.2 * step)  # the longest arrow is 1.2 grid steps; all to scale
    q = ax.quiver(field.x, field.y, field.gx, field.gy, field.grad_norm, angles="xy", scale_units="xy",
                  scale=scale, cmap="plasma_r", norm=LogNorm(), width=0.0055, headwidth=3.5, headlength=4,
                  headaxislength=3.5, zorder=2)
    ax.grid(False)
    cb = fig.colorbar(q, ax=ax, fraction=0.046, pad=0.02)
    cb.set_label(r"$|\nabla_z \cos(z, y)| = \sin\theta / \|z\|$")
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="black", lw=2.2, label="unit circle: all the loss sees")
    for r, ls in ((traj["norm"][0], ":"), (traj["norm"][-1], "--")):
        ax.plot(r * np.cos(t), r * np.sin(t), color="tab:red", lw=1, ls=ls, alpha=0.7)
    ax.annotate("", xy=1.9 * yh, xytext=(0, 0), arrowprops=dict(arrowstyle="-|>", color="tab:blue", lw=2.5))
    ax.text(*(1.93 * yh + np.array([0.0, 0.08])), r"$y$", color="tab:blue", fontsize=13, ha="center")
    Z = traj["z"]
    ax.plot(Z[:, 0], Z[:, 1], "-o", color="tab:red", ms=4, lw=1.5,
            label=rf"gradient descent on $-\cos(z,y)$, $\gamma={p['lr']}$")
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
                 f"norm grows {traj['norm'][0]:.2f} → {traj['norm'][-1]:.2f} (dotted → dashed circle)")
    ax.legend(loc="lower left", fontsize="x-small", framealpha=0.9)

    ax = axes[1]
    pal = plt.get_cmap("viridis")(np.linspace(0.1, 0.8, len(law_rows)))
    for row, c in zip(law_rows, pal):
        ax.loglog(row["norms"], row["closed_form"], color=c, lw=1.5,
                  label=rf"$\theta={row['angle_deg']}°$: $\sin\theta/\|z\|$ (fit slope {row['exponent']:.3f})")
        ax.loglog(row["norms"], row["grad_norm"], "o", color=c, ms=4, mfc="none")
    ax.set_xlabel(r"$\|z\|$")
    ax.set_ylabel(r"$|\nabla_z \cos(z, y)|$")
    ax.set_title("(b) Prop. 3.1: gradient size ∝ 1/‖z‖\n(circles: autograd; lines: closed form)")
    ax.legend(fontsize="x-small")

    ax = axes[2]
    steps = np.arange(len(traj["norm"]))
    ax.plot(steps, traj["norm"], "o", color="tab:red", ms=5, mfc="none", label=r"$\|z_t\|$ (gradient descent)")
    ax.plot(steps, np.sqrt(predicted_sq), "-", color="tab:red", lw=1.2,
            label=r"Cor. 3.3: $\sqrt{\|z_0\|^2 + \gamma^2 \sum_s \|g_s\|^2}$")
    ax.set_xlabel("step t")
    ax.set_ylabel("embedding norm", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(steps, traj["cos"], "--", color="grey", lw=1.2, label=r"$\cos(z_t, y)$ (right axis)")
    ax2.set_ylabel(r"$\cos(z_t, y)$", color="grey")
    ax2.set_ylim(-1.05, 1.05)
    ax2.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize="x-small")
    ax.set_title("(c) Cor. 3.3: every step grows the norm")
    fig.tight_layout()
    ctx.save_figure(fig)

    # ---------------------------------------------------------------- table
    ctx.save_table(pd.DataFrame({
        "step": steps, "z1": Z[:, 0], "z2": Z[:, 1], "norm": traj["norm"],
        "norm_cor33": np.sqrt(predicted_sq), "cos": traj["cos"],
        "grad_norm": np.concatenate([np.sqrt(gsq), [np.nan]]),
    }))

    # ---------------------------------------------------------------- numbers and checks
    ortho = max(float(field["orthogonality"].abs().max()), float(ortho_rand.max()))
    size_err = max(float((field["grad_norm"] * field["norm"] - np.sin(field["angle"])).abs().max()),
                   float(size_err_rand.max()))
    exponents = [r["exponent"] for r in law_rows]
    ctx.number("grid_points", len(field))
    ctx.number("random_points", {"dim": p["check_dim"], "count": p["check_points"]})
    ctx.number("max_abs_cos_grad_z", ortho)
    ctx.number("max_abs_err_gradnorm_times_norm_vs_sin", size_err)
    ctx.number("gradnorm_vs_norm_exponents", {f"{r['angle_deg']}deg": r["exponent"] for r in law_rows})
    ctx.number("trajectory", {"start": list(p["start"]), "lr": p["lr"], "steps": p["steps"],
                              "initial_norm": float(traj["norm"][0]), "final_norm": float(traj["norm"][-1]),
                              "initial_cos": float(traj["cos"][0]), "final_cos": float(traj["cos"][-1])})
    ctx.number("max_rel_err_cor33_identity", float(identity_err.max()))

    ctx.check("prop3.1", "gradient of cos(z, y) (autograd) is orthogonal to z: 2-D grid and "
              f"{p['check_points']} random points in d={p['check_dim']}", "max abs cos∠(∇cos, z)", ortho, "< 1e-9",
              ortho < 1e-9)
    ctx.check("prop3.1", "size of the gradient is sin θ / ‖z‖ (same points)", "max abs(‖∇cos‖·‖z‖ − sin θ)",
              size_err, "< 1e-9", size_err < 1e-9)
    worst = max(exponents, key=lambda e: abs(e + 1))
    ctx.check("prop3.1", "log-log slope of ‖∇cos‖ against ‖z‖ (‖z‖ = 0.1 … 10) at θ = 30°, 60°, 90°",
              "fitted exponent (worst of 3)", worst, "within -1 ± 1e-6", abs(worst + 1) < 1e-6,
              detail=", ".join(f"{r['angle_deg']}°: {r['exponent']:.8f}" for r in law_rows))
    ctx.check("cor3.3", f"one gradient step on -cos(z, y) (autograd) satisfies ‖z − γg‖² = ‖z‖² + γ²‖g‖² "
              f"({p['steps']} steps, γ = {p['lr']})", "max relative error", float(identity_err.max()), "< 1e-9",
              float(identity_err.max()) < 1e-9)
    growth = np.diff(traj["norm"])
    ctx.check("cor3.3", "the norm grows at every step of the trajectory", "final / initial norm",
              float(traj["norm"][-1] / traj["norm"][0]), "> 1 and every step's Δ‖z‖ > 0",
              bool((growth > 0).all()), detail=f"smallest step growth {growth.min():.3g}")


ARTIFACT = Artifact(
    name="fig1_gradient_geometry",
    paper_ref="Section 3 (conceptual figure; Prop. 3.1, Cor. 3.3)",
    title="Gradient geometry of a normalised loss: orthogonal, 1/‖z‖ in size, norm grows",
    claims=("prop3.1", "cor3.3"),
    runs=no_runs,
    build=build,
    check=check,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
