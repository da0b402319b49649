"""Seen vs unseen images: embedding norms of training images, test images and novel images
(PAPER.md claim 5, the paper's seen-vs-unseen analysis next to Figure 4).

Design (``design`` parameter):

- ``cifar100`` (the paper's, ``paper`` profile): a model trained on CIFAR-10; seen = its
  training images, unseen = CIFAR-10 test images, novel = CIFAR-100 test images;
- ``holdout`` (offline analogue, ``quick`` / ``smoke``): a model trained on CIFAR-10 classes
  0-4 only; seen = its training images, unseen = test images of classes 0-4, novel = test
  images of classes 5-9 (PAPER.md "Data available offline here").

All norms are of the embedding the loss normalises, on un-augmented images. The figure shows
their ECDFs per method; the AUROC of "small norm => unseen" (test vs train, novel vs test)
comes with a percentile-bootstrap confidence interval.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from embedding_norms.analysis import novelty_auroc
from embedding_norms.config import METHODS, ConfigError
from embedding_norms.plotting import METHOD_LABELS
from embedding_norms.runs import EMBEDDINGS, embedding_of
from reproduce.common import Artifact, BuildContext, Plan, RunSpec, main_single

NAME = "fig_seen_vs_unseen"

DEFAULTS: dict[str, Any] = {
    "methods": ["simclr", "simsiam"],
    "design": "holdout",              # paper: cifar100
    "holdout_classes": [0, 1, 2, 3, 4],
    "n_boot": 1000,                   # bootstrap resamples of the AUROC interval
    "ci": 0.95,
    "embedding": "projector",         # as Figure 4 (PAPER.md); "loss": predictor output for SimSiam
}

SET_COLORS = {"train": "#1b9e77", "test": "#7570b3", "novel": "#d95f02"}


def _params(p: dict[str, Any], source: str) -> dict[str, Any]:
    for m in p["methods"]:
        if m not in METHODS:
            raise ConfigError(f"{source}: artifacts.{NAME}.methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
    if p["design"] not in ("holdout", "cifar100"):
        raise ConfigError(f"{source}: artifacts.{NAME}.design must be 'holdout' or 'cifar100', got {p['design']!r}")
    if p["embedding"] not in EMBEDDINGS:
        raise ConfigError(f"{source}: artifacts.{NAME}.embedding must be one of {', '.join(EMBEDDINGS)}, "
                          f"got {p['embedding']!r}")
    if not 0 < p["ci"] < 1 or p["n_boot"] < 0:
        raise ConfigError(f"{source}: artifacts.{NAME}: need 0 < ci < 1 and n_boot >= 0")
    return p


def _run_spec(plan: Plan, method: str, p: dict[str, Any]) -> RunSpec:
    if p["design"] == "holdout":
        return plan.run(method, f"{method}-holdout",
                        {"data": {"classes": list(p["holdout_classes"])}, "eval": {"novel": "heldout"}})
    return plan.run(method, f"{method}-novel-cifar100", {"eval": {"novel": "cifar100"}})


def runs(plan: Plan) -> list[RunSpec]:
    """The training runs this artifact needs at ``plan``'s profile (see the module docstring)."""
    p = _params(plan.params(NAME, DEFAULTS), f"profile {plan.profile}")
    return [_run_spec(plan, m, p) for m in p["methods"]]


def _set_names(p: dict[str, Any]) -> dict[str, str]:
    if p["design"] == "holdout":
        seen = ",".join(map(str, p["holdout_classes"]))
        return {"train": f"train (seen; classes {seen})", "test": f"test (unseen; classes {seen})",
                "novel": "novel (test images of the held-out classes)"}
    return {"train": "train (seen; CIFAR-10)", "test": "test (unseen; CIFAR-10)", "novel": "novel (CIFAR-100 test)"}


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    p = _params(ctx.params(DEFAULTS), f"profile {ctx.profile}")
    names = _set_names(p)
    norm_rows, auroc_rows, frames = [], [], []
    for i, method in enumerate(p["methods"]):
        h = ctx.run(_run_spec(ctx.plan, method, p).label)
        if not h.usable:
            st = h.status
            ctx.skip(f"{METHOD_LABELS[method]} ({h.label})", f"run {st.state}" + (f": {st.reason}" if st.reason else ""),
                     run=h.label)
            continue
        try:
            emb = h.embeddings()
        except FileNotFoundError as exc:
            ctx.skip(f"{METHOD_LABELS[method]} ({h.label})", str(exc))
            continue
        if "novel/emb_norm" not in emb:
            ctx.skip(f"{METHOD_LABELS[method]} ({h.label})", "the run saved no novel split (eval.novel unset)")
            continue
        norms = {s: embedding_of(emb, s, p["embedding"], vectors=False)[1].astype(np.float64) for s in ("train", "test", "novel")}
        bad = [s for s, n in norms.items() if n.size == 0 or not np.isfinite(n).all()]
        if bad:
            ctx.skip(f"{METHOD_LABELS[method]} ({h.label})", f"empty or non-finite norms in split(s) {', '.join(bad)}")
            continue
        for s, n in norms.items():
            norm_rows.append({"method": method, "split": s, "set": names[s], "images": int(n.size), "mean_norm": float(n.mean()),
                              "median_norm": float(np.median(n)), "std_norm": float(n.std())})
            frames.append(pd.DataFrame({"method": method, "set": s, "norm": n}))
        comparisons = {"test vs train": ("train", "test"), "novel vs test": ("test", "novel"),
                       "novel vs train": ("train", "novel")}
        res = {}
        for comp, (seen, unseen) in comparisons.items():
            r = novelty_auroc(norms[seen], norms[unseen], int(p["n_boot"]), float(p["ci"]), seed=i)
            res[comp] = r
            auroc_rows.append({"method": method, "comparison": comp, "auroc": r["auroc"], "ci_low": r["ci_low"],
                               "ci_high": r["ci_high"], "n_seen": int(r["n_seen"]), "n_unseen": int(r["n_unseen"])})

        m = {s: float(n.mean()) for s, n in norms.items()}
        who = METHOD_LABELS[method]
        for a, b in (("train", "test"), ("test", "novel")):
            ratio = m[a] / m[b] if m[b] > 0 else float("nan")
            ctx.check("seen-unseen", f"{who}: mean norm {a} > {b}", f"mean norm ratio {a}/{b}", ratio, "> 1",
                      None if not np.isfinite(ratio) else ratio > 1, f"means {m[a]:.4g} vs {m[b]:.4g}")
        level = f"{p['ci']:.0%}"
        for comp in ("test vs train", "novel vs test"):
            r = res[comp]
            lo_ok = r["ci_low"] > 0.5 if np.isfinite(r["ci_low"]) else r["auroc"] > 0.5
            ctx.check("seen-unseen", f"{who}: AUROC of 'small norm => unseen', {comp}", "AUROC", r["auroc"],
                      f"> 0.5 with the {level} CI above 0.5", lo_ok,
                      f"{level} bootstrap CI [{r['ci_low']:.3f}, {r['ci_high']:.3f}], "
                      f"{int(r['n_unseen'])} unseen vs {int(r['n_seen'])} seen images")

    if norm_rows:
        ctx.save_table(pd.DataFrame(auroc_rows))
        ctx.save_table(pd.DataFrame(norm_rows), "_norms")
        ctx.number("mean_norm", {f"{r['method']}/{r['split']}": r["mean_norm"] for r in norm_rows})
        ctx.number("auroc", {f"{r['method']}/{r['comparison']}": [r["auroc"], r["ci_low"], r["ci_high"]]
                             for r in auroc_rows})
        ctx.save_figure(_figure(pd.concat(frames, ignore_index=True), pd.DataFrame(auroc_rows), names, p))
    ctx.number("design", p["design"])
    ctx.note(("Design `holdout` (offline analogue of the paper's CIFAR-10 vs CIFAR-100 comparison): the model is "
              f"trained on CIFAR-10 classes {p['holdout_classes']}; novel = test images of the other classes."
              if p["design"] == "holdout" else
              "Design `cifar100` (the paper's): a CIFAR-10 model; novel = CIFAR-100 test images."))
    ctx.number("embedding", p["embedding"])
    ctx.note(("Norms of the projector output z (as for Figure 4, PAPER.md; option `embedding: loss` uses the "
              "predictor output p that SimSiam's loss normalises)" if p["embedding"] == "projector" else
              "Norms of the embedding the loss normalises (projector output for SimCLR, predictor output for "
              "SimSiam; PAPER.md's Figure-4 choice is `embedding: projector`)")
             + " on un-augmented images. AUROC: score = -norm, positive class = the unseen set, so 0.5 is "
             f"chance; interval: {p['ci']:.0%} percentile bootstrap ({p['n_boot']} resamples of each set "
             "independently). A claim check on an AUROC holds when the whole interval lies above 0.5.")


def _figure(frame: pd.DataFrame, auroc: pd.DataFrame, names: dict[str, str], p: dict[str, Any]) -> plt.Figure:
    methods = list(dict.fromkeys(frame["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 3.9), squeeze=False)
    for ax, method in zip(axes[0], methods):
        d = frame[frame.method == method].assign(set=lambda f: f["set"].map(names))
        sns.ecdfplot(data=d, x="norm", hue="set", hue_order=[names[s] for s in ("train", "test", "novel")],
                     palette={names[s]: c for s, c in SET_COLORS.items()}, ax=ax)
        a = auroc[auroc.method == method].set_index("comparison")
        txt = "\n".join(f"AUROC {c}: {a.loc[c, 'auroc']:.3f} [{a.loc[c, 'ci_low']:.3f}, {a.loc[c, 'ci_high']:.3f}]"
                        for c in ("test vs train", "novel vs test"))
        ax.text(0.98, 0.04, txt, ha="right", va="bottom", fontsize=7, transform=ax.transAxes,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        ax.set_title(f"{METHOD_LABELS[method]}")
        ax.set_xlabel("embedding norm")
        ax.set_ylabel("fraction of images (ECDF)")
        if ax.get_legend() is not None:
            sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, title=None, fontsize=7, frameon=False)
    design = ("trained on CIFAR-10 classes " + ",".join(map(str, p["holdout_classes"])) if p["design"] == "holdout"
              else "trained on CIFAR-10; novel = CIFAR-100")
    fig.suptitle(f"Seen vs unseen images ({design}); small norm => unseen", fontsize="medium")
    fig.tight_layout()
    return fig


ARTIFACT = Artifact(
    name=NAME,
    paper_ref="Section 5 (seen vs unseen, next to Figure 4)",
    title="Training images get larger embedding norms than unseen and novel images",
    claims=("seen-unseen",),
    runs=runs,
    build=build,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
