"""Simulation (b) of Section 3: with a supervised InfoNCE loss on class-imbalanced data, do
frequent classes get larger embedding norms?

4 latent classes on the 10-d sphere, drawn with weights 1:2:4:8 (released code: 2000 points,
per-coordinate spread 1 around each class centre), observed through a random 64×10 Gaussian
map (×10); an MLP 64-64-10 trained with supervised InfoNCE (one random same-class partner,
temperature 1) by SGD (lr 0.01, batch 128, 100 epochs); 5 seeds (each: new data, new init).
(a) Mean embedding norm per class over the epochs (mean ± sd over seeds). (b) Final mean norm
per class for every seed.

The trained models are shared with ``fig_sim_density`` (cached in
:func:`embedding_norms.simulate.imbalance_simulation`); its scale parameters are the ones of
this artifact (``artifacts.fig_sim_imbalance`` in the profile YAML).

Usage: ``python reproduce/fig_sim_imbalance.py --profile quick``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from embedding_norms import simulate as sim
from embedding_norms.config import ConfigError
from reproduce.common import Artifact, BuildContext, Plan, main_single, no_runs

#: The paper's values (PAPER.md, "Simulation (b)"; released code where the paper is silent).
DEFAULTS: dict[str, Any] = {f.name: (list(f.default) if isinstance(f.default, tuple) else f.default)
                            for f in dataclasses.fields(sim.ImbalanceSetup)}


def setup_from_params(params: dict[str, Any]) -> sim.ImbalanceSetup:
    """The (validated) simulation constants of a profile's parameters.

    Raises:
        ValueError: an invalid value (e.g. a class weight <= 0), naming the parameter.
    """
    kw = dict(params)
    kw["class_weights"] = tuple(kw["class_weights"])
    return sim.ImbalanceSetup(**kw)


def imbalance_setup(plan: Plan) -> sim.ImbalanceSetup:
    """The simulation constants of this artifact for ``plan``'s profile (also used by fig_sim_density).

    Raises:
        ConfigError: an invalid value, named by its profile key ``artifacts.fig_sim_imbalance.*``.
    """
    try:
        return setup_from_params(plan.params("fig_sim_imbalance", DEFAULTS))
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"profile {plan.profile}: artifacts.fig_sim_imbalance: {exc} "
                          f"(fix configs/profiles/{plan.profile}.yaml)") from None


def class_palette(n: int) -> list:
    """Light (rare) to dark (frequent) blue, one colour per class."""
    return sns.color_palette("Blues", n_colors=n + 2)[2:]


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    setup = setup_from_params(ctx.params(DEFAULTS))
    res = sim.imbalance_simulation(setup)
    w = np.asarray(setup.class_weights)
    C, S = len(w), setup.seeds
    counts = np.stack([np.bincount(lab, minlength=C) for lab in res.labels])       # (S, C)
    final = res.class_norms[:, -1, :]                                               # (S, C)
    initial = res.class_norms[:, 0, :]
    hist = res.history()

    # ---------------------------------------------------------------- figure
    pal = class_palette(C)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.6), gridspec_kw={"width_ratios": [1.5, 1]})
    ax = axes[0]
    epochs = np.arange(setup.epochs + 1)
    for c in range(C):
        m, sd = res.class_norms[:, :, c].mean(0), res.class_norms[:, :, c].std(0)
        ax.plot(epochs, m, color=pal[c], lw=2, label=f"weight {w[c]:g} (≈{counts[:, c].mean():.0f} points)")
        ax.fill_between(epochs, m - sd, m + sd, color=pal[c], alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean embedding norm of the class")
    ax.set_title(f"(a) class norms during training (mean ± sd over {S} seeds)")
    ax.legend(title="class sampling weight", fontsize="small")
    ax = axes[1]
    x = np.log2(w)
    for s in range(S):
        ax.plot(x, final[s], "o-", color="grey", alpha=0.6, lw=1, ms=4, label="one seed" if s == 0 else None)
    ax.plot(x, final.mean(0), "s-", color="black", lw=2, ms=6, label="mean over seeds")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in w])
    ax.set_xlabel("class sampling weight")
    ax.set_ylabel(f"mean norm after {setup.epochs} epochs")
    ax.set_title("(b) final class norms, every seed")
    ax.legend(fontsize="small")
    fig.tight_layout()
    ctx.save_figure(fig)

    # ---------------------------------------------------------------- tables
    summary = pd.DataFrame({
        "class": np.arange(C), "weight": w, "points_mean": counts.mean(0),
        "initial_norm_mean": initial.mean(0), "final_norm_mean": final.mean(0), "final_norm_sd": final.std(0),
        "growth_mean": (final - initial).mean(0),
        **{f"final_norm_seed{s}": final[s] for s in range(S)},
    })
    ctx.save_table(summary)
    agg = (hist.groupby(["epoch", "class", "weight"]).mean_norm
           .agg(["mean", "std", "min", "max"]).reset_index()
           .rename(columns={"mean": "mean_norm", "std": "sd_over_seeds", "min": "min_over_seeds",
                            "max": "max_over_seeds"}))
    ctx.save_table(agg, suffix="_history")

    # ---------------------------------------------------------------- numbers and checks
    ordered = np.all(np.diff(final[:, np.argsort(w, kind="stable")], axis=1) > 0, axis=1)     # (S,)
    rho = np.array([stats.spearmanr(w, final[s]).statistic for s in range(S)])
    rho_mean_curve = float(stats.spearmanr(w, final.mean(0)).statistic)
    ctx.number("setup", dataclasses.asdict(setup))
    ctx.number("class_points_per_seed", counts.tolist())
    ctx.number("final_class_norms_per_seed", final.tolist())
    ctx.number("initial_class_norms_per_seed", initial.tolist())
    ctx.number("final_class_norms_mean", final.mean(0).tolist())
    ctx.number("seeds_ordered_by_frequency", int(ordered.sum()))
    ctx.number("spearman_weight_vs_final_norm_per_seed", rho.tolist())
    ctx.number("final_loss_per_seed", res.loss[:, -1].tolist())
    ctx.number("initial_loss_per_seed", res.loss[:, 0].tolist())
    ctx.note("Loss: embedding_norms.losses.supervised_infonce(partner='random'), one random same-class partner per "
             "anchor; the released code additionally makes the partner relation symmetric (j also gets i).")

    ctx.check("sim-imbalance", f"final mean norms strictly ordered by class frequency ({C} classes, weights "
              f"{':'.join(f'{v:g}' for v in w)}), per seed", "fraction of seeds ordered", float(ordered.mean()),
              "> 0.5 (most seeds)", bool(ordered.mean() > 0.5),
              detail=f"{int(ordered.sum())}/{S} seeds; final norms per seed "
                     + "; ".join("[" + ", ".join(f"{v:.2f}" for v in final[s]) + "]" for s in range(S)))
    ctx.check("sim-imbalance", "Spearman ρ between class weight and final class norm, per seed",
              "fraction of seeds with ρ > 0", float((rho > 0).mean()), "> 0.5 (most seeds)",
              bool((rho > 0).mean() > 0.5), detail="ρ per seed: " + ", ".join(f"{r:.2f}" for r in rho)
              + f"; mean {rho.mean():.2f}")
    ctx.check("sim-imbalance", f"seed-averaged final class norms (as plotted in the paper, mean of {S} runs) "
              "ordered by class frequency", "Spearman ρ(weight, mean final norm)", rho_mean_curve, "= 1 (ordered)",
              bool(rho_mean_curve > 0.999),
              detail="mean final norms " + ", ".join(f"{v:.3f}" for v in final.mean(0)))


ARTIFACT = Artifact(
    name="fig_sim_imbalance",
    paper_ref="Section 3, simulation (b)",
    title="Class-imbalance simulation: mean embedding norm per class over training",
    claims=("sim-imbalance",),
    runs=no_runs,
    build=build,
    check=imbalance_setup,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
