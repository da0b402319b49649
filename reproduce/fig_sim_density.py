"""Simulation (c) of Section 3: do points in dense regions get larger norms?

The models of simulation (b) (:func:`embedding_norms.sim_classes.imbalance_simulation`, cached:
with the same simulation parameters as ``fig_sim_imbalance`` they are trained once). As released,
each trained model embeds a *new balanced* data set (4 classes, spread 0.1, new centres and
observation matrix; ``evaluation: released``) and the local sparsity of a point is the Euclidean
distance of its L2-normalised embedding to the k-th (10th) neighbour; ``evaluation: own`` uses the
model's own training points with cosine distance (option). Both are computed in every build:
``evaluation`` chooses the figure's panel (a) and the first check, while "training strengthens the
relation" (ρ after training minus ρ of the untrained network) is always decided on the own training
points, the only points whose density training saw (:data:`NULL_BY_CONSTRUCTION`; issue 20).
(a) Norm against k-NN distance (one seed, coloured by class). (b) Spearman ρ(norm, k-NN distance)
per seed, untrained → trained, for both evaluations.
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
from embedding_norms.stats import seed_interval

PAPER_REF = "Section 3, simulation (c)"
TITLE = "Density simulation: embedding norm against the distance to the 10th nearest neighbour"
CLAIMS = ("sim-density",)
VECTOR = "output z of the simulation's MLP (no backbone)"

#: evaluation -> (point set, distance) in words, and the metric of knn_distance.
EVALUATIONS = {"released": ("a new balanced evaluation set (spread 0.1, new centres and observation matrix)",
                            "euclidean_normalized"),
               "own": ("the model's own (imbalanced) training points", "cosine")}
#: Test label of the primary check (stable: the claim-check key of ``sim-density``).
STRENGTHENS = "training strengthens the relation (own training points)"
#: Why the released evaluation cannot decide whether training strengthens the relation.
NULL_BY_CONSTRUCTION = (
    "the released evaluation set has new class centres and a new observation matrix, so its points and their "
    "neighbourhoods share nothing with the data whose density training saw; the trained network meets them as "
    "inputs from an unrelated linear map, and a change of ρ there measures how training changed the network "
    "in general, not whether dense regions of the training data got larger norms.")


@dataclass(frozen=True)
class Params(ImbalanceSetup):
    """:class:`~embedding_norms.sim_classes.ImbalanceSetup`'s fields (keep them equal to
    ``artifacts.fig_sim_imbalance`` to share the trained models) plus

    Attributes:
        k: the neighbour rank of the sparsity (paper 10).
        scatter_seed: the seed shown in panel (a).
        evaluation: ``released`` (default) or ``own``: the points of panel (a) and of the first check;
            "training strengthens" is always decided on ``own`` (see the module docstring).
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
    """Per seed and evaluation (both, whatever ``p.evaluation``): Spearman ρ(norm, k-NN distance)
    trained and untrained (main table); the points of ``scatter_seed`` in ``p.evaluation`` (``points``)."""
    res = imbalance_simulation(ImbalanceSetup.of(p))
    rows, points = [], None
    for s in range(p.seeds):
        for evaluation, (_, metric) in EVALUATIONS.items():
            trained, init, labels = res.evaluation(s, evaluation)
            row = {"seed": s, "evaluation": evaluation, "points": len(labels)}
            for tag, emb in (("trained", trained), ("init", init)):
                norm, dist = np.linalg.norm(emb, axis=1), knn_distance(emb, p.k, metric)
                r = stats.spearmanr(norm, dist)
                row[f"spearman_{tag}"], row[f"p_value_{tag}"] = float(r.statistic), float(r.pvalue)
                if tag == "trained" and s == p.scatter_seed and evaluation == p.evaluation:
                    points = pd.DataFrame({"seed": s, "class": labels, "norm": norm, f"knn{p.k}_distance": dist})
            rows.append(row)
    table = pd.DataFrame(rows)
    table["strengthening"] = table.spearman_trained - table.spearman_init
    return {"": table, "points": points}


def _of(table: pd.DataFrame, evaluation: str) -> pd.DataFrame:
    return table[table.evaluation == evaluation].sort_values("seed")


def figures(fr: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """(a) norm vs k-NN distance of one seed, (b) ρ per seed, untrained → trained, both evaluations."""
    table, pts = fr[""], fr["points"]
    dist_name = "Euclidean distance (normalised)" if p.evaluation == "released" else "cosine distance"
    pal = class_palette(len(p.class_weights))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.5, 1]})
    ax = axes[0]
    for c, g in pts.groupby("class"):
        ax.scatter(g[f"knn{p.k}_distance"], g.norm, s=9, alpha=0.6, color=pal[c], label=f"class {c}")
    rho = _of(table, p.evaluation).spearman_trained.to_numpy()
    ax.set_xlabel(f"{dist_name} to the {p.k}-th nearest neighbour")
    ax.set_ylabel("embedding norm")
    ax.set_title(f"(a) seed {p.scatter_seed}, {p.evaluation} evaluation set: ρ = {rho[p.scatter_seed]:.2f}")
    ax.legend(fontsize="small", markerscale=2)
    ax = axes[1]
    ax.axhline(0, color="black", lw=0.8)
    alpha = min(0.6, 6.0 / p.seeds)
    for i, (evaluation, colour) in enumerate((("released", "tab:blue"), ("own", "tab:orange"))):
        t = _of(table, evaluation)
        x = np.array([3 * i, 3 * i + 1])
        for r0, r1 in zip(t.spearman_init, t.spearman_trained):
            ax.plot(x, [r0, r1], "o-", color=colour, alpha=alpha, lw=0.8, ms=3)
        ax.plot(x, [t.spearman_init.mean(), t.spearman_trained.mean()], "s-", color="black", lw=2, ms=6,
                label="mean over seeds" if i == 0 else None)
    ax.set_xticks([0, 1, 3, 4])
    ax.set_xticklabels(["released\nuntrained", "released\ntrained", "own\nuntrained", "own\ntrained\n(decides)"])
    ax.set_ylabel(f"Spearman ρ(norm, {p.k}-NN distance)")
    ax.set_ylim(-1.02, max(0.1, float(np.nanmax(table[["spearman_trained", "spearman_init"]].to_numpy())) + 0.1))
    ax.set_title(f"(b) every seed (ρ < 0: dense regions have larger norms), {p.seeds} seeds")
    ax.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    return {"": fig}


def checks(fr: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """One effect per seed, t-interval over seeds: ρ after training on ``p.evaluation``; the
    strengthening by training on the own training points (decides, see :func:`notes`) and, descriptive,
    on the released evaluation set."""
    t, own, released = _of(fr[""], p.evaluation), _of(fr[""], "own"), _of(fr[""], "released")

    def regime(evaluation: str) -> str:
        return (f"simulation (c), {evaluation} evaluation: models trained on the imbalanced set ({p.epochs} epochs, "
                f"{p.loss} loss), evaluated on {EVALUATIONS[evaluation][0]}; {p.seeds} seeds")

    def untrained(table: pd.DataFrame) -> str:
        iv = seed_interval(table.spearman_init)
        return f"ρ of the untrained network: {iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"

    return [
        ClaimCheck.from_correlations("sim-density", "embedding norm against the distance to the k-th neighbour (trained MLP)",
                                f"Spearman ρ(norm, {p.k}-NN distance)", t.spearman_trained, "< 0",
                                regime(p.evaluation), detail=untrained(t)),
        ClaimCheck.from_effects("sim-density", STRENGTHENS, f"ρ(trained) − ρ(untrained), ρ = Spearman ρ(norm, {p.k}-NN "
                                "cosine distance) on the training points", own.strengthening, "< 0", regime("own"),
                                detail=untrained(own)),
        ClaimCheck.from_effects("sim-density", "training strengthens the relation (released evaluation set, cannot "
                                "decide)", "ρ(trained) − ρ(untrained) on the new evaluation set",
                                released.strengthening, "< 0", regime("released"), descriptive=True,
                                detail="cannot decide: " + NULL_BY_CONSTRUCTION),
    ]


def notes(fr: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Which evaluation the figure shows and why the strengthening is decided on the own points."""
    return [f"The figure and the first check use the {p.evaluation} evaluation ({EVALUATIONS[p.evaluation][0]}). "
            "Whether training strengthens the relation is decided on the model's own training points "
            "(evaluation own, cosine distance): " + NULL_BY_CONSTRUCTION + " The released evaluation's difference "
            "is shown as a descriptive check."]


if __name__ == "__main__":
    import sys
    from reproduce.runner import main
    raise SystemExit(main(["fig_sim_density", *sys.argv[1:]]))
