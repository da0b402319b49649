"""Simulation (c) of Section 3: do points in dense regions get larger norms?

Same data and trained models as ``fig_sim_imbalance`` (shared through the cache of
:func:`embedding_norms.simulate.imbalance_simulation`; the scale parameters are those of
``artifacts.fig_sim_imbalance``). For every point: its embedding norm and the cosine distance to
its k-th nearest neighbour (k = 10) among the normalised embeddings (small = dense region).
(a) Norm against k-NN distance (one seed, coloured by class). (b) Spearman ρ(norm, k-NN
distance) per seed, after training and, as a baseline, for the untrained network.

Usage: ``python reproduce/fig_sim_density.py --profile quick``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from embedding_norms import simulate as sim
from embedding_norms.io import atomic_path
from reproduce.common import Artifact, BuildContext, Plan, main_single, no_runs
from reproduce.fig_sim_imbalance import class_palette, imbalance_setup

DEFAULTS = {
    "k": 10,             # the k of the k-NN distance (paper 10)
    "scatter_seed": 0,   # the seed shown in panel (a)
}


def check(plan: Plan) -> None:
    """Validate the parameters before any compute (ValueError names the parameter)."""
    p = plan.params("fig_sim_density", DEFAULTS)
    setup = imbalance_setup(plan)
    if not 0 <= p["scatter_seed"] < setup.seeds:
        raise ValueError(f"scatter_seed must be in 0 … {setup.seeds - 1}, got {p['scatter_seed']!r}")
    if p["k"] < 1:
        raise ValueError(f"k must be an integer >= 1, got {p['k']!r}")


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    check(ctx.plan)
    p = ctx.params(DEFAULTS)
    setup = imbalance_setup(ctx.plan)
    res = sim.imbalance_simulation(setup)
    k, S, C = int(p["k"]), setup.seeds, len(setup.class_weights)

    rows, per_seed = [], []
    for s in range(S):
        out = {"seed": s, "points": len(res.labels[s])}
        for tag, emb in (("trained", res.embeddings[s]), ("init", res.initial_embeddings[s])):
            norm = np.linalg.norm(emb, axis=1)
            dist = sim.knn_distance(emb, k)
            r = stats.spearmanr(norm, dist)
            out[f"spearman_{tag}"], out[f"p_value_{tag}"] = float(r.statistic), float(r.pvalue)
            if tag == "trained":
                per_seed.append((norm, dist))
        rows.append(out)
    table = pd.DataFrame(rows)
    rho, rho0 = table.spearman_trained.to_numpy(), table.spearman_init.to_numpy()

    # ---------------------------------------------------------------- figure
    s0 = int(p["scatter_seed"])
    norm, dist = per_seed[s0]
    lab = res.labels[s0]
    pal = class_palette(C)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.5, 1]})
    ax = axes[0]
    for c in range(C):
        m = lab == c
        ax.scatter(dist[m], norm[m], s=9, alpha=0.6, color=pal[c], label=f"weight {setup.class_weights[c]:g}")
    ax.set_xlabel(f"cosine distance to the {k}-th nearest neighbour")
    ax.set_ylabel("embedding norm")
    ax.set_title(f"(a) seed {s0}: norm vs local sparsity, Spearman ρ = {rho[s0]:.2f}")
    ax.legend(title="class sampling weight", fontsize="small", markerscale=2)
    ax = axes[1]
    x = np.arange(S)
    ax.axhline(0, color="black", lw=0.8)
    ax.plot(x, rho, "o", color="tab:blue", ms=8, label=f"after {setup.epochs} epochs")
    ax.plot(x, rho0, "x", color="tab:grey", ms=8, mew=2, label="untrained network (baseline)")
    for i in x:
        ax.plot([i, i], [rho0[i], rho[i]], color="grey", lw=0.8, alpha=0.7)
    ax.set_xticks(x)
    ax.set_xlabel("seed")
    ax.set_ylabel(f"Spearman ρ(norm, {k}-NN distance)")
    ax.set_ylim(-1.02, max(0.1, float(np.max(np.r_[rho, rho0])) + 0.1))
    ax.set_title("(b) every seed (ρ < 0: dense regions have larger norms)")
    ax.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    ctx.save_figure(fig)

    # ---------------------------------------------------------------- tables
    ctx.save_table(table)
    points = pd.DataFrame({"seed": s0, "class": lab, "weight": np.asarray(setup.class_weights)[lab],
                           "norm": norm, f"knn{k}_cosine_distance": dist})
    path = ctx.out.tables / f"{ctx.artifact.name}_points.csv"
    with atomic_path(path) as tmp:
        points.to_csv(tmp, index=False)
    ctx.add_table_file(path)

    # ---------------------------------------------------------------- numbers and checks
    ctx.number("k", k)
    ctx.number("spearman_trained_per_seed", rho.tolist())
    ctx.number("spearman_init_per_seed", rho0.tolist())
    ctx.number("spearman_trained_mean", float(rho.mean()))
    ctx.number("spearman_init_mean", float(rho0.mean()))
    ctx.check("sim-density", f"Spearman ρ between embedding norm and cosine distance to the {k}-th neighbour "
              f"(trained MLP, {S} seeds)", "mean ρ over seeds", float(rho.mean()), "< 0 (and < 0 in every seed)",
              bool(rho.mean() < 0 and (rho < 0).all()),
              detail="ρ per seed: " + ", ".join(f"{r:.3f}" for r in rho)
                     + f"; untrained network: " + ", ".join(f"{r:.3f}" for r in rho0))
    ctx.check("sim-density", "training strengthens the relation: ρ after training below ρ of the untrained "
              "network (the random network alone already gives ρ < 0)", "fraction of seeds with ρ_trained < ρ_init",
              float((rho < rho0).mean()), "> 0.5 (most seeds)", bool((rho < rho0).mean() > 0.5),
              detail=f"mean ρ trained {rho.mean():.3f} vs untrained {rho0.mean():.3f}")


ARTIFACT = Artifact(
    name="fig_sim_density",
    paper_ref="Section 3, simulation (c)",
    title="Density simulation: embedding norm against the distance to the 10th nearest neighbour",
    claims=("sim-density",),
    runs=no_runs,
    build=build,
    check=check,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
