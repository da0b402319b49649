"""Simulation (a) of Section 3: how many SGD steps a set of positive pairs needs to align.

``n`` pairs ``(z_i, p_i)`` in ``R^d`` are trained directly (no network) with SGD at learning
rate ``lr`` on ``-mean_i cos(z_i, p_i)`` until the mean cosine similarity reaches ``1 - tol``
(:mod:`embedding_norms.sim_pairs`). (a) Steps against the shared norm (random pairs, θ ≈ π/2), with
the least-squares ``c·ρ²`` curve and the continuous-time closed form of
:func:`embedding_norms.sim_theory.predicted_steps` (no fitted constant). (b) Steps against the
initial angle (unit norm; partners interpolated towards ``-z`` as released).

Every seed draws fresh pairs; each check takes one effect per seed (fitted exponent, Spearman ρ,
deviation from the closed form) and decides by the t-interval over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from embedding_norms.report import ClaimCheck
from embedding_norms.sim_pairs import PairSetup, angle_sweep, check_norms, norm_sweep
from embedding_norms.sim_theory import check_count, check_positive, fit_power_law, fit_quadratic

PAPER_REF = "Section 3, simulation (a)"
TITLE = "Steps for positive pairs to align grow with the square of the norm and with the initial angle"
CLAIMS = ("conv-norm", "conv-angle")
VECTOR = "the embeddings z, p themselves (no network)"


@dataclass(frozen=True)
class Params(PairSetup):
    """The paper's values (PAPER.md, "Simulation (a)"); ``smoke`` shrinks them in its profile YAML.

    Attributes (besides :class:`~embedding_norms.sim_pairs.PairSetup`'s n, d, lr, tol, max_steps):
        norms: the shared norms of panel (a).
        interpolation_steps: m; partners interpolated with a = k/m, k = -(m-1) … m-1 (released 25).
        seeds: independent draws of the pairs (seeds 0 … seeds-1); >= 2 for an interval.
        exponent_range: the claim's band for the fitted exponent of steps vs norm.
        angle_spearman_min: ρ(initial angle, steps) must exceed this.
        closed_form_max_rel_err: tolerated relative deviation from the closed form.
    """

    norms: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
    interpolation_steps: int = 25
    seeds: int = 3
    exponent_range: tuple[float, ...] = (1.8, 2.2)
    angle_spearman_min: float = 0.9
    closed_form_max_rel_err: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_norms(self.norms)
        check_count("interpolation_steps", self.interpolation_steps, 2)
        check_count("seeds", self.seeds)
        if len(self.exponent_range) != 2 or not self.exponent_range[0] < self.exponent_range[1]:
            raise ValueError(f"exponent_range must be [low, high] with low < high, got {self.exponent_range!r}")
        if not -1 <= self.angle_spearman_min < 1:
            raise ValueError(f"angle_spearman_min must lie in [-1, 1), got {self.angle_spearman_min!r}")
        check_positive("closed_form_max_rel_err", self.closed_form_max_rel_err)

    @property
    def interpolations(self) -> list[float]:
        """``k / m`` for ``k = -(m-1) … m-1`` (released code: m = 25)."""
        m = self.interpolation_steps
        return [k / m for k in range(-(m - 1), m)]


def _rel_dev(df: pd.DataFrame) -> pd.Series:
    return (df.steps - df.predicted_steps).abs() / df.predicted_steps.clip(lower=1)


def frames(runs, p: Params) -> dict[str, pd.DataFrame]:
    """Both sweeps for every seed (tables ``_norm``, ``_angle``) and the per-seed statistics (``_fit``)."""
    norm = pd.concat([norm_sweep(p, p.norms, s).assign(seed=s) for s in range(p.seeds)], ignore_index=True)
    angle = pd.concat([angle_sweep(p, p.interpolations, s).assign(seed=s) for s in range(p.seeds)],
                      ignore_index=True)
    rows = []
    for s in range(p.seeds):
        dn, da = norm[norm.seed == s], angle[angle.seed == s]
        ok = dn[dn.converged & (dn.steps > 0)]
        fit = fit_power_law(ok.norm, ok.steps) if len(ok) >= 2 else {"exponent": np.nan, "stderr": np.nan, "r": np.nan}
        oka = da[da.converged]
        rows.append({"seed": s, "exponent": fit["exponent"], "exponent_stderr": fit["stderr"], "loglog_r": fit["r"],
                     "c_fit": fit_quadratic(ok.norm, ok.steps) if len(ok) else np.nan,
                     "c_closed_form": float(np.median(dn.predicted_steps / dn.norm ** 2)),
                     "angle_spearman": float(stats.spearmanr(oka.initial_angle, oka.steps).statistic)
                     if len(oka) >= 2 else np.nan,
                     "max_rel_dev_norm": float(_rel_dev(dn).max()), "max_rel_dev_angle": float(_rel_dev(da).max()),
                     "not_converged": int((~dn.converged).sum() + (~da.converged).sum())})
    return {"norm": norm, "angle": angle, "fit": pd.DataFrame(rows)}


def figures(fr: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """(a) steps vs norm, (b) steps vs initial angle: every seed, with the closed form."""
    norm, angle, fit = fr["norm"], fr["angle"], fr["fit"]
    c_fit = float(fit.c_fit.mean())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    rr = np.linspace(0, max(p.norms) * 1.02, 300)
    ax.plot(norm.norm, norm.steps, "o", color="tab:blue", ms=8, mfc="none", mew=1.5,
            label=f"simulation (SGD, lr = {p.lr:g}; {p.seeds} seeds)", zorder=3)
    ax.plot(rr, c_fit * rr ** 2, "-", color="black", lw=1.5, label=rf"least-squares fit ${c_fit:.1f}\,\rho^2$ (seed mean)")
    ax.plot(norm.norm, norm.predicted_steps, "x", color="tab:orange", ms=7, mew=2, zorder=4,
            label=r"closed form $\frac{n\rho^2}{2\,lr}\ln\frac{\tan(\theta_0/2)}{\tan(\theta_T/2)}$ (no fit)")
    bad = norm[~norm.converged]
    if len(bad):
        ax.plot(bad.norm, bad.steps, "v", color="red", ms=9, label="did not converge (max_steps)")
    ax.set_xlabel(r"shared embedding norm $\rho = \|z\| = \|p\|$")
    ax.set_ylabel(f"steps until mean cos ≥ 1 − {p.tol:g}")
    ax.set_title(f"(a) steps vs norm: fitted exponent {fit.exponent.mean():.3f} (seed mean)"
                 f"\n(n = {p.n} pairs in d = {p.d}, θ₀ ≈ π/2)")
    ax.legend(fontsize="small", loc="upper left")
    ax = axes[1]
    for s, g in angle.groupby("seed"):
        ax.plot(g.initial_angle, g.steps, "o", color="tab:blue", ms=5, alpha=0.7, label="simulation" if s == 0 else None)
    g0 = angle[angle.seed == 0]
    ax.plot(g0.initial_angle, g0.predicted_steps, "-", color="tab:orange", lw=2, label=r"closed form ($\rho = 1$, no fit)")
    ax.set_xticks([0, np.pi / 4, np.pi / 2, 3 * np.pi / 4, np.pi])
    ax.set_xticklabels(["0", "π/4", "π/2", "3π/4", "π"])
    ax.set_xlabel("initial mean angle of the positive pairs (radians)")
    ax.set_ylabel(f"steps until mean cos ≥ 1 − {p.tol:g}")
    ax.set_title(f"(b) steps vs initial angle (unit norm): Spearman ρ = {fit.angle_spearman.mean():.3f}\n"
                 "the gradient vanishes as θ → π (opposite halves)")
    ax.legend(fontsize="small", loc="upper left")
    fig.tight_layout()
    return {"": fig}


def checks(fr: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """One effect per seed, t-interval over seeds (see the module docstring)."""
    fit = fr["fit"]
    lo, hi = p.exponent_range
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    tol = p.closed_form_max_rel_err
    regime = (f"simulation (a) as released: n = {p.n} pairs in d = {p.d}, SGD lr = {p.lr:g}, tol = {p.tol:g}; "
              f"{p.seeds} seeds of fresh pairs")
    nc = int(fit.not_converged.sum())
    conv = f"; {nc} sweep point(s) did not converge within max_steps" if nc else ""
    return [
        ClaimCheck.from_effects(
            "conv-norm", f"least-squares fit of log(steps) on log(norm), norms {min(p.norms):g} … {max(p.norms):g}",
            f"{half:g} − |fitted exponent − {centre:g}| (> 0: exponent within [{lo:g}, {hi:g}])",
            half - (fit.exponent - centre).abs(), "> 0", regime,
            detail="exponent per seed: " + ", ".join(f"{e:.3f}" for e in fit.exponent)
                   + f"; c·ρ² fit c = {fit.c_fit.mean():.2f}, closed form c = {fit.c_closed_form.mean():.2f}{conv}"),
        ClaimCheck.from_effects(
            "conv-norm", "simulated steps vs the continuous-time closed form (Prop. 3.1 integrated, no fitted "
            "constant), every norm", f"{tol:g} − max relative deviation", tol - fit.max_rel_dev_norm, "> 0", regime,
            detail="max relative deviation per seed: " + ", ".join(f"{v:.3f}" for v in fit.max_rel_dev_norm)),
        ClaimCheck.from_correlations(
            "conv-angle", f"steps to converge against the initial angle ({len(p.interpolations)} interpolations "
            "towards -z, unit norm)", "Spearman ρ(angle, steps)",
            fit.angle_spearman, "> 0", regime, null=p.angle_spearman_min,
            detail="ρ per seed: " + ", ".join(f"{v:.3f}" for v in fit.angle_spearman) + conv),
        ClaimCheck.from_effects(
            "conv-angle", "simulated steps vs the closed form, every initial angle", f"{tol:g} − max relative deviation",
            tol - fit.max_rel_dev_angle, "> 0", regime,
            detail="max relative deviation per seed: " + ", ".join(f"{v:.3f}" for v in fit.max_rel_dev_angle)),
    ]


if __name__ == "__main__":
    import sys
    from reproduce.runner import main
    raise SystemExit(main(["fig_sim_convergence", *sys.argv[1:]]))
