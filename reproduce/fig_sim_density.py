"""Simulation (c) of Section 3: do points in dense regions get larger norms?

The models of simulation (b) (:func:`embedding_norms.sim_classes.imbalance_simulation`, cached:
with the same simulation parameters as ``fig_sim_imbalance`` they are trained once). As released,
each trained model embeds a *new balanced* data set (4 classes, spread 0.1, new centres and
observation matrix; ``evaluation: released``) and the local sparsity of a point is the Euclidean
distance of its L2-normalised embedding to the k-th (10th) neighbour; ``evaluation: own`` uses the
model's own training points with cosine distance (option). (a) Norm against k-NN distance (one
seed, coloured by class). (b) Spearman ρ(norm, k-NN distance) per seed, after training and for the
untrained network (baseline).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from embedding_norms.plotting import class_palette
from embedding_norms.report import ClaimCheck
from embedding_norms.sim_classes import ImbalanceSetup, imbalance_simulation, knn_distance
from embedding_norms.sim_theory import check_count

PAPER_REF = "Section 3, simulation (c)"
TITLE = "Density simulation: embedding norm against the distance to the 10th nearest neighbour"
CLAIMS = ("sim-density",)
VECTOR = "output z of the simulation's MLP (no backbone)"

#: evaluation -> (point set, distance) in words, and the metric of knn_distance.
EVALUATIONS = {"released": ("a new balanced evaluation set (spread 0.1, new centres and observation matrix)",
                            "euclidean_normalized"),
               "own": ("the model's own (imbalanced) training points", "cosine")}


@dataclass(frozen=True)
class Params(ImbalanceSetup):
    """:class:`~embedding_norms.sim_classes.ImbalanceSetup`'s fields (keep them equal to
    ``artifacts.fig_sim_imbalance`` to share the trained models) plus

    Attributes:
        k: the neighbour rank of the sparsity (paper 10).
        scatter_seed: the seed shown in panel (a).
        evaluation: ``released`` (default) or ``own`` (see the module docstring).
    """

    k: int = 10
    scatter_seed: int = 0
    evaluation: str = "released"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count("k", self.k)
        if self.k >= self.n_samples:
            raise ValueError(f"k must be < n_samples ({self.n_samples}), got {self.k}")
        if not (isinstance(self.scatter_seed, int) and 0 <= self.scatter_seed < self.seeds):
            raise ValueError(f"scatter_seed must be in 0 … seeds-1 ({self.seeds - 1}), got {self.scatter_seed!r}")
        if self.evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {', '.join(EVALUATIONS)}, got {self.evaluation!r}")


def frames(runs, p: Params) -> dict[str, pd.DataFrame]:
    """Per seed: Spearman ρ(norm, k-NN distance) trained and untrained (main table); the points of
    ``scatter_seed`` (``points``)."""
    res = imbalance_simulation(ImbalanceSetup.of(p))
    metric = EVALUATIONS[p.evaluation][1]
    rows, points = [], None
    for s in range(p.seeds):
        trained, init, labels = res.evaluation(s, p.evaluation)
        row = {"seed": s, "points": len(labels)}
        for tag, emb in (("trained", trained), ("init", init)):
            norm, dist = np.linalg.norm(emb, axis=1), knn_distance(emb, p.k, metric)
            r = stats.spearmanr(norm, dist)
            row[f"spearman_{tag}"], row[f"p_value_{tag}"] = float(r.statistic), float(r.pvalue)
            if tag == "trained" and s == p.scatter_seed:
                points = pd.DataFrame({"seed": s, "class": labels, "norm": norm, f"knn{p.k}_distance": dist})
        rows.append(row)
    return {"": pd.DataFrame(rows), "points": points}


def figures(fr: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """(a) norm vs k-NN distance of one seed, (b) ρ per seed, trained and untrained."""
    table, pts = fr[""], fr["points"]
    rho, rho0 = table.spearman_trained.to_numpy(), table.spearman_init.to_numpy()
    dist_name = "Euclidean distance (normalised)" if p.evaluation == "released" else "cosine distance"
    pal = class_palette(len(p.class_weights))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.5, 1]})
    ax = axes[0]
    for c, g in pts.groupby("class"):
        ax.scatter(g[f"knn{p.k}_distance"], g.norm, s=9, alpha=0.6, color=pal[c], label=f"class {c}")
    ax.set_xlabel(f"{dist_name} to the {p.k}-th nearest neighbour")
    ax.set_ylabel("embedding norm")
    ax.set_title(f"(a) seed {p.scatter_seed}, {p.evaluation} evaluation set: ρ = {rho[p.scatter_seed]:.2f}")
    ax.legend(fontsize="small", markerscale=2)
    ax = axes[1]
    x = np.arange(len(rho))
    ax.axhline(0, color="black", lw=0.8)
    ax.plot(x, rho, "o", color="tab:blue", ms=8, label=f"after {p.epochs} epochs")
    ax.plot(x, rho0, "x", color="tab:grey", ms=8, mew=2, label="untrained network (baseline)")
    for i in x:
        ax.plot([i, i], [rho0[i], rho[i]], color="grey", lw=0.8, alpha=0.7)
    ax.set_xticks(x)
    ax.set_xlabel("seed")
    ax.set_ylabel(f"Spearman ρ(norm, {p.k}-NN distance)")
    ax.set_ylim(-1.02, max(0.1, float(np.nanmax(np.r_[rho, rho0])) + 0.1))
    ax.set_title("(b) every seed (ρ < 0: dense regions have larger norms)")
    ax.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    return {"": fig}


def checks(fr: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """One ρ per seed, t-interval over seeds."""
    t = fr[""]
    where, _ = EVALUATIONS[p.evaluation]
    regime = (f"simulation (c), {p.evaluation} evaluation: models trained on the imbalanced set "
              f"({p.epochs} epochs, {p.loss} loss), evaluated on {where}; {p.seeds} seeds")
    return [
        ClaimCheck.from_correlations("sim-density", f"embedding norm against the distance to the {p.k}-th neighbour "
                                     "(trained MLP)", f"Spearman ρ(norm, {p.k}-NN distance)", t.spearman_trained,
                                     "< 0", regime, detail="untrained network: " + ", ".join(f"{v:.3f}" for v in t.spearman_init)),
        ClaimCheck.from_effects("sim-density", "training strengthens the relation (the random network alone already "
                                "gives ρ < 0)", "ρ(trained) − ρ(untrained)", t.spearman_trained - t.spearman_init,
                                "< 0", regime),
    ]


if __name__ == "__main__":
    import sys
    from reproduce.runner import main
    raise SystemExit(main(["fig_sim_density", *sys.argv[1:]]))
