"""Simulation (a) of Section 3: how many SGD steps a set of positive pairs needs to align.

``n`` pairs ``(z_i, p_i)`` in ``R^d`` are trained directly (no network) with SGD at learning
rate ``lr`` on ``-mean_i cos(z_i, p_i)`` until the mean cosine similarity reaches ``1 - tol``.
(a) Steps against the shared embedding norm (random pairs, θ ≈ π/2): with the least-squares
``c·ρ²`` curve, the fitted exponent of steps vs norm (log-log least squares) and the
continuous-time closed form of :func:`embedding_norms.simulate.predicted_steps`
(``dθ/dt = -k sin θ``, ``k = 2 lr / (n ρ²)``; no fitted constant).
(b) Steps against the initial angle (unit norm; partners interpolated towards ``-z`` as in the
released code), with the same closed form.

Usage: ``python reproduce/fig_sim_convergence.py --profile quick``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from embedding_norms import simulate as sim
from reproduce.common import Artifact, BuildContext, Plan, main_single, no_runs

NAME = "fig_sim_convergence"

#: The paper's values (PAPER.md, "Simulation (a)"); ``smoke`` shrinks them in its profile YAML.
DEFAULTS = {
    "n": 500,
    "d": 20,
    "lr": 10.0,
    "tol": 1e-3,
    "norms": [0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
    "interpolation_steps": 25,   # partners interpolated with a = k / 25, k = -24 … 24 (released code)
    "seed": 0,
    "max_steps": 200000,
    "exponent_range": [1.8, 2.2],
    "angle_spearman_min": 0.9,
    "closed_form_max_rel_err": 0.1,
}


def _interpolations(m: int) -> list[float]:
    """Partner interpolations ``k / m``, ``k = -(m-1) … m-1`` (released code: m = 25)."""
    if m < 2:
        raise ValueError(f"interpolation_steps must be an integer >= 2, got {m!r}")
    return [k / m for k in range(-(m - 1), m)]


def check(plan: Plan) -> None:
    """Validate this artifact's profile parameters before any compute (ValueError names the parameter)."""
    p = plan.params(NAME, DEFAULTS)
    sim.check_pair_simulation(p["n"], p["d"], p["lr"], p["tol"], p["max_steps"], norms=p["norms"],
                              interpolations=_interpolations(int(p["interpolation_steps"])))


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    p = ctx.params(DEFAULTS)
    inter = _interpolations(int(p["interpolation_steps"]))

    norm_df = sim.norm_sweep(p["norms"], p["n"], p["d"], p["lr"], p["tol"], p["seed"], p["max_steps"])
    angle_df = sim.angle_sweep(inter, p["n"], p["d"], p["lr"], p["tol"], p["seed"], p["max_steps"])

    ok_n = norm_df[norm_df.converged & (norm_df.steps > 0)]
    fit = sim.fit_power_law(ok_n.norm, ok_n.steps) if len(ok_n) >= 2 else None
    c_fit = sim.fit_quadratic(ok_n.norm, ok_n.steps) if len(ok_n) else float("nan")
    c_theory = float(np.median(norm_df.predicted_steps / norm_df.norm ** 2))
    norm_df["fitted_c_rho2"] = c_fit * norm_df.norm ** 2
    rel_n = (norm_df.steps - norm_df.predicted_steps).abs() / norm_df.predicted_steps.clip(lower=1)
    ok_a = angle_df[angle_df.converged]
    rho_a = stats.spearmanr(ok_a.initial_angle, ok_a.steps)
    rel_a = ((angle_df.steps - angle_df.predicted_steps).abs() / angle_df.predicted_steps.clip(lower=1))

    # ---------------------------------------------------------------- figure
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    rr = np.linspace(0, max(p["norms"]) * 1.02, 300)
    ax.plot(norm_df.norm, norm_df.steps, "o", color="tab:blue", ms=9, mfc="none", mew=1.8,
            label="simulation (SGD, lr = %g)" % p["lr"], zorder=3)
    ax.plot(rr, c_fit * rr ** 2, "-", color="black", lw=1.5, label=rf"least-squares fit ${c_fit:.1f}\,\rho^2$")
    ax.plot(norm_df.norm, norm_df.predicted_steps, "x", color="tab:orange", ms=7, mew=2, zorder=4,
            label=r"closed form $\frac{n\rho^2}{2\,lr}\ln\frac{\tan(\theta_0/2)}{\tan(\theta_T/2)}$ (no fit)")
    if not norm_df.converged.all():
        bad = norm_df[~norm_df.converged]
        ax.plot(bad.norm, bad.steps, "v", color="red", ms=9, label="did not converge (max_steps)")
    ax.set_xlabel(r"shared embedding norm $\rho = \|z\| = \|p\|$")
    ax.set_ylabel(f"steps until mean cos ≥ 1 − {p['tol']:g}")
    ttl = f"(a) steps vs norm: fitted exponent {fit['exponent']:.3f}" if fit else "(a) steps vs norm"
    ax.set_title(ttl + f"\n(n = {p['n']} pairs in d = {p['d']}, θ₀ ≈ π/2)")
    ax.legend(fontsize="small", loc="upper left")
    ins = ax.inset_axes([0.67, 0.09, 0.3, 0.28])
    ins.loglog(ok_n.norm, ok_n.steps, "o", color="tab:blue", ms=3.5)
    rl = rr[rr >= min(p["norms"]) / 1.2]
    ins.loglog(rl, c_fit * rl ** 2, "-", color="black", lw=1)
    ins.set_title("log-log", fontsize="x-small")
    ins.tick_params(labelsize="xx-small")

    ax = axes[1]
    ax.plot(angle_df.initial_angle, angle_df.steps, "o", color="tab:blue", ms=6, label="simulation", zorder=3)
    ax.plot(angle_df.initial_angle, angle_df.predicted_steps, "-", color="tab:orange", lw=2,
            label=r"closed form ($\rho = 1$, no fit)")
    ax.set_xticks([0, np.pi / 4, np.pi / 2, 3 * np.pi / 4, np.pi])
    ax.set_xticklabels(["0", "π/4", "π/2", "3π/4", "π"])
    ax.set_xlabel("initial mean angle of the positive pairs (radians)")
    ax.set_ylabel(f"steps until mean cos ≥ 1 − {p['tol']:g}")
    ax.set_title(f"(b) steps vs initial angle (unit norm): Spearman ρ = {rho_a.statistic:.3f}\n"
                 "the gradient vanishes as θ → π (opposite halves)")
    ax.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    ctx.save_figure(fig)

    ctx.save_table(norm_df, suffix="_norm")
    ctx.save_table(angle_df, suffix="_angle")

    # ---------------------------------------------------------------- numbers and checks
    ctx.number("settings", {k: p[k] for k in ("n", "d", "lr", "tol", "seed", "max_steps")})
    ctx.number("steps_vs_norm", dict(zip([f"{x:g}" for x in norm_df.norm], norm_df.steps.tolist())))
    ctx.number("steps_vs_angle", [{"initial_angle": float(a), "steps": int(s)}
                                  for a, s in zip(angle_df.initial_angle, angle_df.steps)])
    ctx.number("fitted_exponent", fit["exponent"] if fit else None)
    ctx.number("fitted_exponent_stderr", fit["stderr"] if fit else None)
    ctx.number("fitted_c", c_fit)
    ctx.number("closed_form_c", c_theory)
    ctx.number("all_converged", bool(norm_df.converged.all() and angle_df.converged.all()))
    ctx.number("angle_spearman", float(rho_a.statistic))
    ctx.number("closed_form_max_rel_err_norm", float(rel_n.max()))
    ctx.number("closed_form_max_rel_err_angle", float(rel_a.max()))

    lo, hi = p["exponent_range"]
    not_conv = int((~norm_df.converged).sum() + (~angle_df.converged).sum())
    conv_note = f"; {not_conv} sweep point(s) did not converge within max_steps" if not_conv else ""
    ctx.check("conv-norm", f"least-squares fit of log(steps) on log(norm), norms {min(p['norms']):g} … "
              f"{max(p['norms']):g} (n = {p['n']}, d = {p['d']}, lr = {p['lr']:g})", "fitted exponent",
              fit["exponent"] if fit else None, f"within [{lo:g}, {hi:g}]",
              (lo <= fit["exponent"] <= hi) if fit else None,
              detail=f"c·ρ² fit: c = {c_fit:.2f}; closed form c = {c_theory:.2f}; "
                     f"r(log-log) = {fit['r']:.6f}{conv_note}" if fit else "fewer than 2 converged norms")
    tol_rel = p["closed_form_max_rel_err"]
    ctx.check("conv-norm", "simulated steps vs the continuous-time closed form (Prop. 3.1 integrated, no fitted "
              "constant), every norm", "max relative deviation", float(rel_n.max()), f"< {tol_rel:g}",
              float(rel_n.max()) < tol_rel)
    ctx.check("conv-angle", f"steps to converge against the initial angle ({len(inter)} interpolations towards -z, "
              "unit norm)", "Spearman ρ", float(rho_a.statistic), f"> {p['angle_spearman_min']:g}",
              float(rho_a.statistic) > p["angle_spearman_min"],
              detail=f"steps {int(angle_df.steps.min())} … {int(angle_df.steps.max())} for angles "
                     f"{angle_df.initial_angle.min():.3f} … {angle_df.initial_angle.max():.3f} rad{conv_note}")
    ctx.check("conv-angle", "simulated steps vs the closed form, every initial angle", "max relative deviation",
              float(rel_a.max()), f"< {tol_rel:g}", float(rel_a.max()) < tol_rel)


ARTIFACT = Artifact(
    name="fig_sim_convergence",
    paper_ref="Section 3, simulation (a)",
    title="Steps for positive pairs to align grow with the square of the norm and with the initial angle",
    claims=("conv-norm", "conv-angle"),
    runs=no_runs,
    build=build,
    check=check,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
