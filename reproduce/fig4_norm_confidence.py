"""Figure 4 of the paper: embedding norms encode confidence (PAPER.md claim 5), over seeds.

Three panels per method (SimCLR, SimSiam, BYOL: every method whose base runs exist), x = embedding
norm min-max normalised to [0, 1] per run and split and cut into 20 buckets of width 0.05:

- left: per bucket, accuracy of a kNN classifier (k = 10) on the training embeddings. Two
  variants, each with its own checks: ``self`` (released, the main figure):
  ``KNeighborsClassifier(n_neighbors=10)`` fit on the L2-normalised embeddings and predicting the
  same embeddings, so each image votes for itself; ``loo``: leave-one-out cosine kNN (figure ``_loo``);
- middle: per bucket, agreement of the CIFAR-10N aggregate human label (CIFAR-100N noisy label)
  with the true label on the training images;
- right: per bucket, mean entropy (bits) of the CIFAR-10H human label distribution on the
  un-augmented test images: all 10 000 (split ``test_all``, the norms the base runs save at epoch 0
  and at the end of training), else the run's test subset.

The figure shows each bucket's mean over seeds with its 95 % t-interval where every seed fills the
bucket with at least the released minimum of images (kNN 10, agreement 50, entropy 10), grey
points where only some seeds do, and below each panel the images per bucket (mean over seeds).

Checks (issue 20): per seed, the Spearman rho *over images* between an image's norm and its
per-image quantity (kNN correctness, CIFAR-10N agreement, CIFAR-10H entropy) at the end of
training, averaged over seeds on the Fisher-z scale with a t-interval
(:func:`embedding_norms.stats.correlation_interval`); and the same given the image's norm in the
BatchNorm-recalibrated untrained network (epoch 0): the partial Spearman rho, which separates "SSL
training put confidence into the norm" from "the untrained network already ranks the images so".
Every check is gated on the method's base runs having learned (:func:`reproduce.experiments.gate`).

Vector: the projector output z (``vector: z``, the released notebook's ``embedding_layer =
'projector'``), or the predictor output p (``vector: p``, SimSiam/BYOL only). Training view:
``released`` = one augmented view per image on CIFAR, the un-augmented images on ImageNet-100
(the released ImageNet-100 dataset never applies its transform); ``both_views`` adds the other
view (figure ``_<view>``). Runs: each method's base run per dataset and seed, shared with the
other artifacts. The per-image rho at every epoch the base runs save (quick: 0, 1, 2, 4, 8, 12) is
the ``by_epoch`` table and the ``_effect`` figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from embedding_norms.analysis import (align_human_labels, bucket_statistics, human_label_entropy, image_spearman,
                                      knn_loo_correct, knn_self_vote_correct, partial_spearman)
from embedding_norms.config import METHODS
from embedding_norms.data import DataError, load_cifar10h, load_cifar10n, load_cifar100n
from embedding_norms.data.sources import resolve_data_dir
from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, plain_log_ticks, plot_effect_by_epoch, wrap
from embedding_norms.report import ClaimCheck
from embedding_norms.runs import VECTORS, embedding_of
from embedding_norms.stats import correlation_interval, seed_interval
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import base_run, gate, knn_gain

PAPER_REF = "Figure 4"
TITLE = "Embedding norms encode confidence: kNN accuracy, human agreement and human uncertainty per norm bucket"
CLAIMS = ("norm-knn", "norm-human")
VECTOR = "projector output z (option: predictor output p)"

SUPPORTED_DATASETS = ("cifar10", "cifar100", "imagenet100")
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet100": "ImageNet-100"}
#: view -> run-store split of the training embeddings
SPLITS = {"augmented": "train_aug", "unaugmented": "train"}
#: the released training view per dataset
RELEASED_VIEW = {"cifar10": "augmented", "cifar100": "augmented", "imagenet100": "unaugmented"}
KNN_VARIANTS = {"self": "kNN (k={k}, fit on the normalised embeddings, each image votes for itself; released)",
                "loo": "kNN (k={k}, cosine, leave-one-out)"}
#: dataset -> (human source, key of the human label) for the middle panel
TRAIN_HUMAN = {"cifar10": ("cifar10n", "aggre_label"), "cifar100": ("cifar100n", "noisy_label")}
EXPECTED = {
    "cifar10n": "CIFAR-10N file cifar10n_labels.npz or CIFAR-10_human.pt with int keys clean_label, "
                "aggre_label of shape (50000,) in original CIFAR-10 train order",
    "cifar100n": "CIFAR-100N file cifar100n_labels.npz or CIFAR-100_human.pt with int keys clean_label, "
                 "noisy_label of shape (50000,) in original CIFAR-100 train order",
    "cifar10h": "CIFAR-10H file cifar10h-probs.npy, float (10000, 10) in original CIFAR-10 test order",
}
LOADERS = {"cifar10n": load_cifar10n, "cifar100n": load_cifar100n, "cifar10h": load_cifar10h}
PANELS = {"knn": "kNN accuracy (%)", "agreement": "human label = true label (%)",
          "entropy": "CIFAR-10H entropy (bits)"}
#: per-image quantity of each panel, as named in the check labels
QUANTITY = {"knn": "kNN {variant} correct", "agreement": "{human} agreement", "entropy": "CIFAR-10H entropy"}
HUMAN_NAME = {"cifar10": "CIFAR-10N", "cifar100": "CIFAR-100N"}
#: the epoch whose norms the control check holds fixed (the BatchNorm-recalibrated untrained network)
CONTROL_EPOCH = 0
STANDIN = "the run was trained on generated stand-in images (data not available), so human labels do not apply"


@dataclass(frozen=True)
class Params:
    """``artifacts.fig4_norm_confidence`` of a profile."""

    methods: tuple[str, ...] = ("simclr", "simsiam", "byol")
    datasets: tuple[str, ...] = ("cifar10",)        # paper: cifar10, cifar100, imagenet100
    vector: str = "z"                               # z = projector output (released); p = predictor output
    n_buckets: int = 20
    knn_k: int = 10
    knn_variants: tuple[str, ...] = ("self", "loo")  # first = main figure
    min_count_knn: int = 10
    min_count_agreement: int = 50
    min_count_entropy: int = 10
    train_view: str = "released"                    # released (per dataset), augmented or unaugmented
    both_views: bool = True                         # also the other training view (own figure and checks)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; choose from {', '.join(METHODS)}")
        bad = [d for d in self.datasets if d not in SUPPORTED_DATASETS]
        if bad or not self.datasets:
            raise ValueError(f"datasets: unsupported {bad}; choose from {', '.join(SUPPORTED_DATASETS)}")
        if self.vector not in VECTORS:
            raise ValueError(f"vector must be one of {', '.join(VECTORS)}, got {self.vector!r}")
        if self.vector == "p" and "simclr" in self.methods:
            raise ValueError("vector p (predictor output) needs methods with a predictor; SimCLR has none "
                             "(remove simclr from methods or use vector z)")
        bad = [v for v in self.knn_variants if v not in KNN_VARIANTS]
        if bad or not self.knn_variants:
            raise ValueError(f"knn_variants: unknown {bad}; choose from {', '.join(KNN_VARIANTS)}")
        if self.train_view not in ("released", *SPLITS):
            raise ValueError(f"train_view must be released, augmented or unaugmented, got {self.train_view!r}")
        if self.n_buckets < 2 or self.knn_k < 1 or min(self.min_count_knn, self.min_count_agreement,
                                                       self.min_count_entropy) < 1:
            raise ValueError("need n_buckets >= 2, knn_k >= 1 and every min_count_* >= 1")

    def views(self, dataset: str) -> list[str]:
        """Training views of ``dataset``: the shown one first, then the other with ``both_views``."""
        first = RELEASED_VIEW[dataset] if self.train_view == "released" else self.train_view
        return [first] + ([v for v in SPLITS if v != first] if self.both_views else [])


class Key(NamedTuple):
    dataset: str
    method: str
    seed: int


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """The base run of every method on every dataset and seed (shared with the other artifacts)."""
    return {Key(ds, m, s): base_run(plan, m, s, ds) for ds in p.datasets for m in p.methods for s in plan.seeds}


def _data_dir(runs: dict) -> Optional[str]:
    """The offline data folder: a run handle's ``data_dir`` if it has one, else ``$EMBEDDING_NORMS_DATA``."""
    for h in runs.values():
        if getattr(h, "data_dir", None):
            return str(h.data_dir)
    d = resolve_data_dir(None)
    return str(d) if d else None


def _human(kind: str, data_dir: Optional[str], cache: dict) -> tuple[Any, str]:
    """(data, "") for a human-label source, or (None, reason) when it cannot be used."""
    if kind not in cache:
        if data_dir is None:
            cache[kind] = (None, f"no data folder (--data-dir or EMBEDDING_NORMS_DATA); needs the {EXPECTED[kind]}")
        else:
            try:
                cache[kind] = (LOADERS[kind](data_dir), "")
            except DataError as exc:  # HumanLabelError is a DataError
                cache[kind] = (None, f"{exc} (expected: {EXPECTED[kind]})")
    return cache[kind]


class Values(NamedTuple):
    """Per-image arrays of one panel of one run at one epoch (aligned, ``(N,)`` each)."""

    norms: np.ndarray
    values: np.ndarray
    indices: np.ndarray
    split: str


def _panels(key: Key, emb: dict, standin: bool, p: Params, data_dir: Optional[str], cache: dict):
    """Per-image values of one run at one epoch: yields (panel, variant, view, Values or None, reason)."""
    k = p.knn_k
    for view in p.views(key.dataset):
        split = SPLITS[view]
        try:
            norms = embedding_of(emb, split, p.vector, vectors=False)[1]
            labels, idx = emb[f"{split}/labels"], emb[f"{split}/indices"]
        except (KeyError, ValueError) as exc:
            for v in p.knn_variants:
                yield "knn", v, view, None, str(exc.args[0])
            if key.dataset in TRAIN_HUMAN:
                yield "agreement", "", view, None, str(exc.args[0])
            continue
        for v in p.knn_variants:
            try:
                vectors = embedding_of(emb, split, p.vector)[0]
                correct = (knn_self_vote_correct if v == "self" else knn_loo_correct)(vectors, labels, k)
                yield "knn", v, view, Values(norms, 100.0 * correct, idx, split), ""
            except (KeyError, ValueError) as exc:
                yield "knn", v, view, None, str(exc.args[0])
        if key.dataset in TRAIN_HUMAN:
            kind, field = TRAIN_HUMAN[key.dataset]
            data, why = (None, STANDIN) if standin else _human(kind, data_dir, cache)
            if data is not None:
                try:
                    hl = align_human_labels(data[field], idx, labels, f"{kind} {field} ({EXPECTED[kind]})",
                                            min_agreement=0.3, reference=data["clean_label"])
                    yield "agreement", "", view, Values(norms, 100.0 * (hl == labels), idx, split), ""
                    continue
                except DataError as exc:
                    why = str(exc)
            yield "agreement", "", view, None, why
    if key.dataset == "cifar10":
        probs, why = (None, STANDIN) if standin else _human("cifar10h", data_dir, cache)
        if probs is not None:
            split = "test_all" if "test_all/z_norm" in emb else "test"  # every test image where the run saved them
            try:
                ph = align_human_labels(probs, emb[f"{split}/indices"], emb[f"{split}/labels"],
                                        f"cifar10h ({EXPECTED['cifar10h']})", min_agreement=0.95)
                norms = embedding_of(emb, split, p.vector, vectors=False)[1]
                yield "entropy", "", "test", Values(norms, human_label_entropy(ph), emb[f"{split}/indices"], split), ""
                return
            except (DataError, KeyError, ValueError) as exc:
                why = str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
        yield "entropy", "", "test", None, why


def _min_count(p: Params, panel: str) -> int:
    return {"knn": p.min_count_knn, "agreement": p.min_count_agreement, "entropy": p.min_count_entropy}[panel]


def _control(now: Values, before: Optional[Values]) -> Optional[np.ndarray]:
    """The epoch-0 norms of ``now``'s images in ``now``'s order, or None when any is missing."""
    if before is None:
        return None
    if np.array_equal(now.indices, before.indices):
        return before.norms
    pos = pd.Series(np.arange(len(before.indices)), index=before.indices)
    if not pd.Index(now.indices).isin(pos.index).all() or pos.index.has_duplicates:
        return None
    return before.norms[pos.loc[now.indices].to_numpy()]


def _gates(runs: dict[Key, Any], p: Params) -> pd.DataFrame:
    """Per dataset and method: the learning gate's reason over its usable base runs ('' = learned)
    and the kNN gains (points over epoch 0) per seed."""
    rows = []
    for ds in p.datasets:
        for m in p.methods:
            hs = [h for k, h in sorted(runs.items()) if k.dataset == ds and k.method == m and h.usable]
            rows.append({"dataset": ds, "method": m, "reason": (gate(hs) or "") if hs else "",
                         "gains": [round(knn_gain(h), 1) for h in hs]})
    return pd.DataFrame(rows, columns=["dataset", "method", "reason", "gains"])


def frames(runs: dict[Key, Any], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: per panel, the per-image Spearman rho at the end of training (each run's last epoch,
    as the paper's Figure 4), Fisher-z mean over seeds with its interval, and the partial rho given
    the epoch-0 norm; ``by_epoch``: the rho at every saved epoch; ``buckets``: per-bucket values of
    every run at its last epoch (every bucket, ``drawn`` = at least the minimum count); ``trend``:
    rho (and partial rho) per seed and epoch; ``_gate``: the learning gate per method; ``_skipped``:
    panels not computed."""
    data_dir, cache = _data_dir(runs), {}
    buckets, trends, skipped = [], [], []
    for key, run in runs.items():
        if not run.usable:
            continue                               # recorded once by the builder
        epochs, end = sorted(set(run.cfg.train.save_embeddings_epochs)), run.cfg.train.epochs
        if end not in epochs:  # the checks need the end of training; earlier epochs still go to by_epoch
            skipped.append({**key._asdict(), "epoch": end, "panel": "all", "variant": "", "view": "", "last": True,
                            "reason": f"the run saves no embeddings at the end of training (epoch {end}; "
                                      f"train.save_embeddings_epochs = {epochs})"})
        before: dict[tuple, Values] = {}
        for epoch in epochs:
            try:
                emb = run.embeddings(epoch)
            except FileNotFoundError as exc:
                skipped.append({**key._asdict(), "epoch": epoch, "panel": "all", "variant": "", "view": "",
                                "last": epoch == end, "reason": str(exc)})
                continue
            for panel, variant, view, vals, why in _panels(key, emb, bool(run.cfg.data.standin), p, data_dir, cache):
                ids = {**key._asdict(), "panel": panel, "variant": variant, "view": view}
                if vals is None:
                    skipped.append({**ids, "epoch": epoch, "last": epoch == end, "reason": why})
                    continue
                if epoch == CONTROL_EPOCH:
                    before[(panel, variant, view)] = vals
                partial = float("nan")
                if epoch == end:
                    t = bucket_statistics(vals.norms, {"value": vals.values}, p.n_buckets)
                    buckets.append(t.assign(drawn=t["count"] >= _min_count(p, panel), **ids))
                    ctrl = _control(vals, before.get((panel, variant, view))) if epoch != CONTROL_EPOCH else None
                    if ctrl is not None:
                        partial = partial_spearman(vals.norms, vals.values, ctrl)
                trends.append({**ids, "epoch": epoch, "last": epoch == end, "split": vals.split,
                               "effect": image_spearman(vals.norms, vals.values), "partial": partial,
                               "images": len(vals.norms)})
    cols = ["panel", "variant", "dataset", "method", "view", "seed", "bucket", "lo", "hi", "mid", "count", "value",
            "drawn"]
    bt = pd.concat(buckets, ignore_index=True)[cols] if buckets else pd.DataFrame(columns=cols)
    tt = pd.DataFrame(trends, columns=["panel", "variant", "dataset", "method", "view", "seed", "epoch", "last",
                                       "split", "effect", "partial", "images"])
    by = ("panel", "variant", "dataset", "method", "view")
    valid = tt.dropna(subset=["effect"])
    last = valid[valid["last"].astype(bool)]
    table = _rho_table(last, by).merge(_rho_table(last, by, "partial"), on=list(by), how="left",
                                       suffixes=("", "_partial")) if len(last) else pd.DataFrame()
    return {"": table, "by_epoch": _rho_table(valid, (*by, "epoch")), "buckets": bt, "trend": tt,
            "_gate": _gates(runs, p), "_skipped": pd.DataFrame(skipped)}


def _rho_table(trend: pd.DataFrame, by: tuple[str, ...], column: str = "effect") -> pd.DataFrame:
    """Per group: Fisher-z mean of the per-seed correlations in ``column`` with its 95 % interval."""
    rows = []
    for keys, g in trend.dropna(subset=[column]).groupby(list(by), sort=True):
        g = g.sort_values("seed")
        iv = correlation_interval(g[column].tolist())
        rows.append(dict(zip(by, keys), rho=iv.mean, ci_low=iv.low, ci_high=iv.high, seeds=iv.n,
                         images=int(g["images"].max()), per_seed=[round(float(v), 4) for v in g[column]]))
    out = pd.DataFrame(rows, columns=[*by, "rho", "ci_low", "ci_high", "seeds", "images", "per_seed"])
    return out.assign(effect=out["rho"])   # plot_effect_by_epoch reads ``effect``


def _expected(p: Params):
    """Every (panel, variant, dataset, method, view) the parameters ask for."""
    for ds in p.datasets:
        for m in p.methods:
            for view in p.views(ds):
                for v in p.knn_variants:
                    yield "knn", v, ds, m, view
                if ds in TRAIN_HUMAN:
                    yield "agreement", "", ds, m, view
            if ds == "cifar10":
                yield "entropy", "", ds, m, "test"


def check_label(panel: str, variant: str, dataset: str, method: str, view: str, vector: str,
                control: bool = False) -> str:
    """The stable label of a check: ``<Method> <Dataset> <vector>, <view>: <quantity> vs norm[ given
    epoch-0 norm]`` (e.g. ``SimCLR CIFAR-10 z, test: CIFAR-10H entropy vs norm given epoch-0 norm``)."""
    q = QUANTITY[panel].format(variant=variant.replace("self", "self-vote"), human=HUMAN_NAME.get(dataset, ""))
    return (f"{METHOD_LABELS[method]} {DATASET_LABELS[dataset]} {vector}, {view}: {q} vs norm"
            + (" given epoch-0 norm" if control else ""))


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per panel, kNN variant, dataset, method and view: the per-image Spearman rho of norm and
    quantity per seed at the end of training (claim: > 0 for kNN correctness and human agreement,
    < 0 for CIFAR-10H entropy), Fisher-z mean over seeds with a t-interval; for the shown view and
    first kNN variant also the partial rho given the epoch-0 norm (same sign claimed). Every check
    is "not testable" when a base run of its method gained less than the learning gate over epoch 0."""
    trend, sk, gates = frames["trend"], frames["_skipped"], frames["_gate"]
    tt = trend[trend["last"].astype(bool)] if len(trend) else trend  # the end of training, never an earlier epoch
    if len(sk):
        sk = sk[sk["last"].astype(bool)]
    out = []
    for panel, v, ds, m, view in _expected(p):
        sel = lambda f: f[(f.panel == panel) & (f.variant == v) & (f.dataset == ds) & (f.method == m)  # noqa: E731
                          & (f.view == view)] if len(f) else f
        sub = sel(tt).sort_values("seed") if len(tt) else tt
        claim = "norm-knn" if panel == "knn" else "norm-human"
        whole_run = sk[(sk.panel == "all") & (sk.dataset == ds) & (sk.method == m)] if len(sk) else sk
        reasons = sorted(set(sel(sk)["reason"]) | set(whole_run["reason"])) if len(sk) else []
        g = gates[(gates.dataset == ds) & (gates.method == m)]
        untestable = g.reason.iloc[0] if len(g) and g.reason.iloc[0] else None
        gated = (f"gated on the {METHOD_LABELS[m]} base runs (kNN gain over epoch 0 per seed "
                 f"{g.gains.iloc[0] if len(g) else []})")
        side = "< 0" if panel == "entropy" else "> 0"
        regime = f"vector {p.vector}, {view} view" + (f", kNN {v}" if v else "")
        controls = [False] + ([True] if (panel != "knn" or v == p.knn_variants[0]) and view in ("test", p.views(ds)[0])
                              else [])
        for control in controls:
            col = "partial" if control else "effect"
            vals = sub[col].tolist() if len(sub) else []
            if len(sub):
                detail = (f"epoch {sorted(set(sub.epoch.tolist()))}, images per seed {sub.images.tolist()} (split "
                          f"{'/'.join(sorted(set(sub.split)))}); {gated}")
                if control and not np.isfinite(np.asarray(vals, float)).any():
                    detail = f"no epoch-{CONTROL_EPOCH} embeddings of the same images; {detail}"
            else:
                detail = "not evaluated: " + ("; ".join(reasons) if reasons else "no finished run")
            statistic = ("partial Spearman rho over images of norm and quantity given the image's epoch-0 norm "
                         "(recalibrated untrained network), per seed; Fisher-z mean" if control else
                         "Spearman rho over images of norm and per-image quantity, per seed; Fisher-z mean")
            out.append(ClaimCheck.from_correlations(
                claim, check_label(panel, v, ds, m, view, p.vector, control), statistic, vals, side, regime, detail,
                untestable=untestable, method=METHOD_LABELS[m], vector=p.vector, view=view,
                variant=(f"kNN {v}" if panel == "knn" else "") + (", given epoch 0" if control else "")))
    return out


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """``""``: first kNN variant, shown training view; ``<variant>``: other kNN variants;
    ``<view>``: the other training view (kNN and agreement). Points: mean over seeds with 95 %
    t-interval per bucket; ``effect``: each panel's per-image rho against the epoch."""
    bt = frames["buckets"]
    if not len(bt):
        return {}
    out = {"": _figure(bt, p, p.knn_variants[0], shown=True, title=f"vector {p.vector}, released training views")}
    for v in p.knn_variants[1:]:
        out[v] = _figure(bt, p, v, shown=True, title=f"vector {p.vector}, kNN variant {v}")
    if p.both_views:
        other = {ds: p.views(ds)[1] for ds in p.datasets}
        name = "other_view" if len(set(other.values())) > 1 else next(iter(other.values()))
        out[name] = _figure(bt, p, p.knn_variants[0], shown=False, title=f"vector {p.vector}, other training view")
    if len(frames["by_epoch"]) and frames["by_epoch"].epoch.nunique() > 1:
        out["effect"] = _effect_figure(frames["by_epoch"], p)
    return out


def _effect_figure(be: pd.DataFrame, p: Params) -> plt.Figure:
    """The check's statistic (per-image Spearman rho) against the epoch, one panel per Figure 4
    panel (shown training view, first kNN variant), one line per method and dataset."""
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.0), sharey=True)
    for ax, panel in zip(axes, PANELS):
        sel = be[(be.panel == panel) & ((be.variant == p.knn_variants[0]) if panel == "knn" else True)]
        shown = {ds: "test" if panel == "entropy" else p.views(ds)[0] for ds in p.datasets}
        sel = sel[[v == shown[d] for d, v in zip(sel.dataset, sel.view)]]
        if len(sel):
            sel = sel.assign(line=sel.method.map(METHOD_LABELS)
                             + (" " + sel.dataset.map(DATASET_LABELS) if len(p.datasets) > 1 else ""))
            colors = dict(zip(sel.line, sel.method.map(METHOD_COLORS)))
            plot_effect_by_epoch(ax, sel, "line", colors=colors, unit="Spearman rho over images")
            ax.legend(fontsize="x-small")
        else:
            ax.text(0.5, 0.5, "not drawn (see REPORT.md)", ha="center", va="center", transform=ax.transAxes)
        claimed = "claim: rho < 0" if panel == "entropy" else "claim: rho > 0"
        ax.set_title(f"{PANELS[panel]} vs norm, per image\n({claimed})", fontsize="small")
    for ax in axes[1:]:
        ax.set_ylabel("")  # the y axis is shared: labelled once
    fig.suptitle(f"Figure 4 statistics against training length (vector {p.vector}; Fisher-z mean over seeds, "
                 "95 % CI; the checks use the last epoch)", fontsize="medium")
    fig.tight_layout()
    return fig


def _figure(bt: pd.DataFrame, p: Params, variant: str, shown: bool, title: str) -> plt.Figure:
    """Top row: per bucket, mean over seeds with its 95 % t-interval where every seed fills the bucket
    (>= the panel's minimum count), grey where only some do; bottom row: images per bucket (mean
    over seeds, every bucket). x-range: the buckets that hold images."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 6.2), sharex="col", gridspec_kw={"height_ratios": [3, 1.2]})
    markers = dict(zip(p.datasets, ("o", "s", "^")))
    lines = [(ds, m) for ds in p.datasets for m in p.methods]
    width = 1.0 / p.n_buckets
    for col, panel in enumerate(PANELS):
        ax, axc = axes[0, col], axes[1, col]
        sel = bt[(bt.panel == panel) & ((bt.variant == variant) if panel == "knn" else True)]
        spans, partly = [], False
        for i, (ds, m) in enumerate(lines):
            view = "test" if panel == "entropy" else p.views(ds)[0 if shown else -1]
            if panel != "entropy" and not shown and len(p.views(ds)) < 2:
                continue
            d = sel[(sel.dataset == ds) & (sel.method == m) & (sel.view == view)]
            if not len(d):
                continue
            n_seeds, dx = d.seed.nunique(), (i - (len(lines) - 1) / 2) * width / (len(lines) + 1)
            spans += [d.lo.min(), d.hi.max()]
            rows = []
            for b, g in d.groupby("bucket"):
                full = g.drawn.astype(bool).sum() == n_seeds
                iv = seed_interval(g[g.drawn.astype(bool)]["value"].tolist()) if full else None
                rows.append((g.mid.iloc[0] + dx, g[g.drawn.astype(bool)]["value"].mean(), full, iv,
                             g["count"].sum() / n_seeds))
            f = [r for r in rows if r[2]]
            if f:
                ax.errorbar([r[0] for r in f], [r[1] for r in f], fmt=markers[ds] + "-", ms=3.5, lw=1.1, capsize=2,
                            color=METHOD_COLORS[m],
                            yerr=np.array([[r[1] - r[3].low, r[3].high - r[1]] if r[3].defined else [0, 0]
                                           for r in f]).T,
                            label=f"{METHOD_LABELS[m]} {DATASET_LABELS[ds]} ({view}, {n_seeds} seed{'s' * (n_seeds != 1)})")
            g_ = [r for r in rows if not r[2] and np.isfinite(r[1])]
            if g_:
                partly = True
                ax.scatter([r[0] for r in g_], [r[1] for r in g_], s=14, marker=markers[ds], facecolors="none",
                           edgecolors="0.6", lw=0.9, zorder=3)
            axc.bar([r[0] for r in rows], [r[4] for r in rows], width=width / (len(lines) + 1), color=METHOD_COLORS[m],
                    alpha=0.75)
        minimum = _min_count(p, panel)
        name = KNN_VARIANTS[variant].format(k=p.knn_k) if panel == "knn" else PANELS[panel]
        if ax.lines or ax.collections:
            ax.legend(fontsize="x-small")
            ax.set_xlim(min(spans) - width / 2, max(spans) + width / 2)
        else:
            ax.text(0.5, 0.5, "not drawn (see REPORT.md)", ha="center", va="center", transform=ax.transAxes)
        grey = "; grey open: only some seeds" if partly else ""
        ax.set_title(wrap(name, 52) + f"\n(buckets with >= {minimum} images in every seed{grey})", fontsize="small")
        ax.set_ylabel(PANELS[panel])
        axc.set_yscale("log")
        plain_log_ticks(axc, "y")
        axc.set_ylabel("images / bucket\n(mean over seeds)", fontsize="small")
        axc.set_xlabel("normalised embedding norm (bucket)")
    fig.suptitle(f"Figure 4 ({title}): per bucket the mean over seeds with its 95 % CI; "
                 "CIFAR-10H panel: un-augmented test images", fontsize="medium")
    fig.tight_layout()
    return fig


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Which variant produced each number, the learning gate, and the panels not drawn."""
    views = ", ".join(f"{DATASET_LABELS[d]}: {' then '.join(p.views(d))}" for d in p.datasets)
    out = [f"Vector {p.vector} ({'projector output, as the released notebook' if p.vector == 'z' else 'predictor output'}); "
           f"norms min-max normalised per run and split, {p.n_buckets} buckets. kNN variants: "
           + "; ".join(f"`{v}` = {KNN_VARIANTS[v].format(k=p.knn_k)}" for v in p.knn_variants)
           + f" (the main figure shows `{p.knn_variants[0]}`). Training views ({views}); the released ImageNet-100 "
           "embeddings are un-augmented, the CIFAR ones one augmented view. The figure draws a bucket with its "
           f"95 % t-interval over seeds where every seed has >= the minimum images in it (kNN {p.min_count_knn}, "
           f"agreement {p.min_count_agreement}, CIFAR-10H entropy {p.min_count_entropy}, as released), as a grey "
           "open marker where only some seeds do; the bottom row counts the images per bucket (mean over seeds).",
           "Checks (issue 20): per seed, the Spearman rho over images of the norm and the per-image quantity (kNN "
           "correct 0/1, CIFAR-10N label = clean label 0/1, CIFAR-10H entropy in bits) at the end of training; mean "
           "over seeds on the Fisher-z scale (atanh) with a t-interval, mapped back with tanh. The interval is "
           "over seeds (training randomness) on fixed images. The `given epoch-0 norm` checks use the partial "
           "Spearman rho given the same image's norm in the BatchNorm-recalibrated untrained network: a relation "
           "the untrained network already has (e.g. CIFAR-10H entropy at quick scale) is held fixed there, so they "
           "tell whether SSL training put confidence into the norm. The CIFAR-10H panel uses all test images where "
           "the base runs saved their norms (split `test_all`: at epoch 0 and the last epoch), else the test subset "
           "(the `by_epoch` rows say which, column `images`)."]
    gates = frames["_gate"]
    for r in gates.itertuples():
        state = f"not learned: {r.reason}" if r.reason else "learned (every seed >= the gate)"
        out.append(f"Learning gate, {METHOD_LABELS[r.method]} {DATASET_LABELS[r.dataset]} base runs: kNN gain over "
                   f"epoch 0 per seed {r.gains} points; {state}.")
    be = frames["by_epoch"]
    if len(be) and be.epoch.nunique() > 1:
        out.append(f"Against training length (table `by_epoch`, figure `_effect`), epochs {sorted(int(e) for e in be.epoch.unique())}, "
                   "shown training view, per-image rho, Fisher-z mean [95 % CI]:")
        for (panel, v, ds, m, view), g in be.groupby(["panel", "variant", "dataset", "method", "view"], sort=False):
            if (panel == "knn" and v != p.knn_variants[0]) or (panel != "entropy" and view != p.views(ds)[0]):
                continue
            out.append(f"{PANELS[panel]}, {METHOD_LABELS[m]} {DATASET_LABELS[ds]}: " + "; ".join(
                f"ep {int(r.epoch)} {r.rho:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] ({r.images} images)"
                for r in g.sort_values("epoch").itertuples()))
    sk = frames["_skipped"]
    if len(sk):
        for last, head in ((True, "Not drawn"), (False, "Missing at earlier epochs only")):
            part = sk[sk["last"].astype(bool) == last]
            for reason, g in part.groupby("reason"):
                runs = sorted({f"{r.panel}/{r.method}/{r.dataset}" for r in g.itertuples()})
                when = "" if last else f", epochs {sorted({int(e) for e in g.epoch})}"
                out.append(f"{head} ({', '.join(runs)}{when}): {reason}")
    return out


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["fig4_norm_confidence", *sys.argv[1:]]))
