"""Figure 4 of the paper: embedding norms encode confidence (PAPER.md claim 5), over seeds.

Three panels, SimCLR and SimSiam, x = embedding norm min-max normalised to [0, 1] over the data
set and cut into 20 buckets of width 0.05:

- left: per bucket, accuracy of a kNN classifier (k = 10) on the training embeddings (buckets
  with >= 10 samples). Two variants, each with its own checks: ``self`` (released, the main
  figure): ``KNeighborsClassifier(n_neighbors=10)`` fit on the L2-normalised embeddings and
  predicting the same embeddings, so each image votes for itself; ``loo``: leave-one-out
  cosine kNN (figure ``_loo``);
- middle: per bucket, agreement of the CIFAR-10N aggregate human label (CIFAR-100N noisy label)
  with the true label on the training images (buckets with >= 50 samples, as released);
- right: per bucket, mean entropy (bits) of the CIFAR-10H human label distribution on the
  un-augmented test images (buckets with >= 10 samples, as released).

Vector: the projector output z (``vector: z``, the released notebook's ``embedding_layer =
'projector'``), or the predictor output p (``vector: p``, SimSiam/BYOL only). Training view:
``released`` = one augmented view per image on CIFAR, the un-augmented images on ImageNet-100
(the released ImageNet-100 dataset never applies its transform); ``both_views`` adds the other
view (figure ``_<view>``). Runs: each method's base run per dataset and seed, shared with the
other artifacts. A check is the Spearman rho of the bucket trend per seed at the run's last saved
epoch (the end of training, as the paper's figure), with a t-interval over seeds. The same trends
at every epoch the base runs save (``train.save_embeddings_epochs``; quick: 0, 1, 2, 4, 8, 12) are
the ``by_epoch`` table and the ``_effect`` figure: the effect against training length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import matplotlib.pyplot as plt
import pandas as pd

from embedding_norms.analysis import (align_human_labels, bucket_statistics, bucket_trend, human_label_entropy,
                                      knn_loo_correct, knn_self_vote_correct)
from embedding_norms.config import METHODS
from embedding_norms.data import DataError, load_cifar10h, load_cifar10n, load_cifar100n
from embedding_norms.data.sources import resolve_data_dir
from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS, plot_effect_by_epoch
from embedding_norms.report import ClaimCheck
from embedding_norms.runs import VECTORS, embedding_of
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import base_run, effect_table

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
STANDIN = "the run was trained on generated stand-in images (data not available), so human labels do not apply"


@dataclass(frozen=True)
class Params:
    """``artifacts.fig4_norm_confidence`` of a profile."""

    methods: tuple[str, ...] = ("simclr", "simsiam")
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


def _panels(key: Key, emb: dict, standin: bool, p: Params, data_dir: Optional[str], cache: dict):
    """Bucket tables of one run: yields (panel, variant, view, table or None, reason)."""
    nb, k = p.n_buckets, p.knn_k
    for view in p.views(key.dataset):
        split = SPLITS[view]
        try:
            norms = embedding_of(emb, split, p.vector, vectors=False)[1]
            labels = emb[f"{split}/labels"]
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
                yield "knn", v, view, bucket_statistics(norms, {"value": 100.0 * correct}, nb, p.min_count_knn), ""
            except (KeyError, ValueError) as exc:
                yield "knn", v, view, None, str(exc.args[0])
        if key.dataset in TRAIN_HUMAN:
            kind, field = TRAIN_HUMAN[key.dataset]
            data, why = (None, STANDIN) if standin else _human(kind, data_dir, cache)
            if data is not None:
                try:
                    hl = align_human_labels(data[field], emb[f"{split}/indices"], labels,
                                            f"{kind} {field} ({EXPECTED[kind]})", min_agreement=0.3,
                                            reference=data["clean_label"])
                    yield "agreement", "", view, bucket_statistics(norms, {"value": 100.0 * (hl == labels)}, nb,
                                                                   p.min_count_agreement), ""
                    continue
                except DataError as exc:
                    why = str(exc)
            yield "agreement", "", view, None, why
    if key.dataset == "cifar10":
        probs, why = (None, STANDIN) if standin else _human("cifar10h", data_dir, cache)
        if probs is not None:
            try:
                ph = align_human_labels(probs, emb["test/indices"], emb["test/labels"],
                                        f"cifar10h ({EXPECTED['cifar10h']})", min_agreement=0.95)
                norms = embedding_of(emb, "test", p.vector, vectors=False)[1]
                yield "entropy", "", "test", bucket_statistics(norms, {"value": human_label_entropy(ph)}, nb,
                                                               p.min_count_entropy), ""
                return
            except (DataError, KeyError, ValueError) as exc:
                why = str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
        yield "entropy", "", "test", None, why


def frames(runs: dict[Key, Any], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: mean Spearman rho of each bucket trend over seeds with its interval, at the end of
    training (each run's last epoch, as the paper's Figure 4); ``by_epoch``: the same at every saved
    epoch (effect against training length); ``buckets``: per-bucket values of every run at its last
    epoch (long); ``trend``: rho per seed and epoch; ``_skipped``: panels not drawn."""
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
        for epoch in epochs:
            try:
                emb = run.embeddings(epoch)
            except FileNotFoundError as exc:
                skipped.append({**key._asdict(), "epoch": epoch, "panel": "all", "variant": "", "view": "",
                                "last": epoch == end, "reason": str(exc)})
                continue
            for panel, variant, view, t, why in _panels(key, emb, bool(run.cfg.data.standin), p, data_dir, cache):
                ids = {**key._asdict(), "panel": panel, "variant": variant, "view": view}
                if t is None:
                    skipped.append({**ids, "epoch": epoch, "last": epoch == end, "reason": why})
                    continue
                if epoch == end:
                    buckets.append(t.assign(**ids))
                tr = bucket_trend(t, "value")
                trends.append({**ids, "epoch": epoch, "last": epoch == end, "effect": tr["rho"],
                               "buckets": int(tr["n_buckets"]), "samples": int(t["count"].sum())})
    cols = ["panel", "variant", "dataset", "method", "view", "seed", "bucket", "lo", "hi", "mid", "count", "value"]
    bt = pd.concat(buckets, ignore_index=True)[cols] if buckets else pd.DataFrame(columns=cols)
    tt = pd.DataFrame(trends, columns=["panel", "variant", "dataset", "method", "view", "seed", "epoch", "last",
                                       "effect", "buckets", "samples"])
    by = ("panel", "variant", "dataset", "method", "view")
    valid = tt.dropna(subset=["effect"])
    last = valid[valid["last"].astype(bool)]
    table = effect_table(last, by, correlation=True).rename(columns={"effect": "spearman_rho"}) if len(last) else last
    by_epoch = effect_table(valid, (*by, "epoch"), correlation=True) if len(valid) else valid
    # `last`: the end of training (train.epochs), the epoch the checks use; a panel missing there is
    # what the checks report, one missing only at an earlier epoch is a note
    return {"": table, "by_epoch": by_epoch, "buckets": bt, "trend": tt, "_skipped": pd.DataFrame(skipped)}


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


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per panel, kNN variant, dataset, method and view: the Spearman rho of the bucket trend per
    seed at the end of training, the run's last epoch, which it must save (claim: > 0 for kNN accuracy
    and human agreement, < 0 for CIFAR-10H entropy); the earlier epochs are the ``by_epoch`` table and
    the ``effect`` figure."""
    trend, sk = frames["trend"], frames["_skipped"]
    tt = trend[trend["last"].astype(bool)] if len(trend) else trend  # the end of training, never an earlier epoch
    if len(sk):
        sk = sk[sk["last"].astype(bool)]
    out = []
    for panel, v, ds, m, view in _expected(p):
        sel = lambda f: f[(f.panel == panel) & (f.variant == v) & (f.dataset == ds) & (f.method == m)  # noqa: E731
                          & (f.view == view)] if len(f) else f
        sub = sel(tt).sort_values("seed")
        who = f"{METHOD_LABELS[m]} {DATASET_LABELS[ds]}"
        if panel == "knn":
            claim, test = "norm-knn", f"{who}, train ({view}): {KNN_VARIANTS[v].format(k=p.knn_k)} vs norm bucket"
        elif panel == "agreement":
            claim, test = "norm-human", f"{who}, train ({view}): human-label agreement vs norm bucket"
        else:
            claim, test = "norm-human", f"{who}, test (un-augmented): CIFAR-10H entropy vs norm bucket"
        whole_run = sk[(sk.panel == "all") & (sk.dataset == ds) & (sk.method == m)] if len(sk) else sk
        reasons = sorted(set(sel(sk)["reason"]) | set(whole_run["reason"])) if len(sk) else []
        detail = (f"epoch {sorted(set(sub.epoch.tolist()))}, buckets per seed {sub.buckets.tolist()}, images per seed "
                  f"{sub.samples.tolist()}" if len(sub)
                  else "not evaluated: " + ("; ".join(reasons) if reasons else "no finished run"))
        side = "< 0" if panel == "entropy" else "> 0"
        regime = f"vector {p.vector}, {view} view" + (f", kNN {v}" if v else "")
        out.append(ClaimCheck.from_correlations(claim, test, "Spearman rho (bucket index vs per-bucket value)",
                                                sub["effect"].tolist(), side, regime, detail))
        if (panel != "knn" or v == p.knn_variants[0]) and view in ("test", p.views(ds)[0]):
            change = _since_init(sel(trend) if len(trend) else trend)
            if change is not None:
                out.append(ClaimCheck.from_effects(
                    claim, f"{test}: change since initialisation", "rho(last epoch) - rho(epoch 0), paired by seed",
                    change.tolist(), side, regime, "descriptive: is the trend learned, or there in the untrained "
                    "network? (shown, not counted in the verdict)", descriptive=True))
    return out


def _since_init(trend: pd.DataFrame) -> Optional[pd.Series]:
    """Per seed, rho at the end of training minus rho at epoch 0 (the untrained network), or None
    when the runs did not save epoch 0."""
    if not len(trend) or 0 not in set(trend.epoch) or not trend["last"].any():  # the end of training is >= 1
        return None
    first = trend[trend.epoch == 0].set_index("seed")["effect"]
    last = trend[trend["last"].astype(bool)].set_index("seed")["effect"]
    both = first.index.intersection(last.index)
    return (last[both] - first[both]).sort_index() if len(both) else None


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """``""``: first kNN variant, shown training view; ``<variant>``: other kNN variants;
    ``<view>``: the other training view (kNN and agreement). Line = mean over seeds, dots = seeds.
    ``effect``: each panel's trend (Spearman rho) against the epoch, when the runs save several."""
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
    """The check's statistic (Spearman rho of the bucket trend) against the epoch, one panel per
    Figure 4 panel (shown training view, first kNN variant), one line per method and dataset."""
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6), sharey=True)
    for ax, panel in zip(axes, PANELS):
        sel = be[(be.panel == panel) & ((be.variant == p.knn_variants[0]) if panel == "knn" else True)]
        shown = {ds: "test" if panel == "entropy" else p.views(ds)[0] for ds in p.datasets}
        sel = sel[[v == shown[d] for d, v in zip(sel.dataset, sel.view)]]
        if len(sel):
            sel = sel.assign(line=sel.method.map(METHOD_LABELS)
                             + (" " + sel.dataset.map(DATASET_LABELS) if len(p.datasets) > 1 else ""))
            colors = dict(zip(sel.line, sel.method.map(METHOD_COLORS)))
            plot_effect_by_epoch(ax, sel, "line", colors=colors, unit="Spearman rho")
            ax.legend(fontsize="x-small")
        else:
            ax.text(0.5, 0.5, "not drawn (see REPORT.md)", ha="center", va="center", transform=ax.transAxes)
        claimed = "claim: rho < 0" if panel == "entropy" else "claim: rho > 0"
        ax.set_title(f"{PANELS[panel]} vs norm bucket ({claimed})", fontsize="x-small")
    fig.suptitle(f"Figure 4 trends against training length (vector {p.vector}; mean over seeds, 95 % CI; "
                 "the checks use the last epoch)", fontsize="medium")
    fig.tight_layout()
    return fig


def _figure(bt: pd.DataFrame, p: Params, variant: str, shown: bool, title: str) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9))
    styles = dict(zip(p.datasets, ("-", "--", ":")))
    for ax, panel in zip(axes, PANELS):
        sel = bt[(bt.panel == panel) & ((bt.variant == variant) if panel == "knn" else True)]
        for ds in p.datasets:
            view = "test" if panel == "entropy" else p.views(ds)[0 if shown else -1]
            if panel != "entropy" and not shown and len(p.views(ds)) < 2:
                continue
            for m in p.methods:
                d = sel[(sel.dataset == ds) & (sel.method == m) & (sel.view == view)]
                if not len(d):
                    continue
                mean = d.groupby("mid")["value"].mean()
                ax.plot(mean.index, mean.values, styles[ds], color=METHOD_COLORS[m], lw=1.6,
                        label=f"{METHOD_LABELS[m]} {DATASET_LABELS[ds]} ({view}, {d.seed.nunique()} seeds)")
                ax.scatter(d["mid"], d["value"], s=6, color=METHOD_COLORS[m], alpha=0.45, lw=0)
        if ax.lines:
            ax.legend(fontsize="x-small")
        else:
            ax.text(0.5, 0.5, "not drawn (see REPORT.md)", ha="center", va="center", transform=ax.transAxes)
        minimum = {"knn": p.min_count_knn, "agreement": p.min_count_agreement, "entropy": p.min_count_entropy}[panel]
        name = KNN_VARIANTS[variant].format(k=p.knn_k) if panel == "knn" else PANELS[panel]
        ax.set_title(f"{name}\nbuckets with >= {minimum} images; line: seed mean, dots: seeds", fontsize="x-small")
        ax.set_xlim(0, 1)
        ax.set_xlabel("normalised embedding norm (bucket)")
        ax.set_ylabel(PANELS[panel])
    fig.suptitle(f"Figure 4 ({title}); CIFAR-10H panel: un-augmented test images", fontsize="medium")
    fig.tight_layout()
    return fig


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """Which variant produced each number, and the panels not drawn."""
    views = ", ".join(f"{DATASET_LABELS[d]}: {' then '.join(p.views(d))}" for d in p.datasets)
    out = [f"Vector {p.vector} ({'projector output, as the released notebook' if p.vector == 'z' else 'predictor output'}); "
           f"norms min-max normalised per run and split, {p.n_buckets} buckets. kNN variants: "
           + "; ".join(f"`{v}` = {KNN_VARIANTS[v].format(k=p.knn_k)}" for v in p.knn_variants)
           + f" (the main figure shows `{p.knn_variants[0]}`). Training views ({views}); the released ImageNet-100 "
           "embeddings are un-augmented, the CIFAR ones one augmented view. Minimum bucket sizes: kNN "
           f"{p.min_count_knn}, agreement {p.min_count_agreement}, CIFAR-10H entropy {p.min_count_entropy} (as "
           "released). Checks: Spearman rho of bucket index vs value per seed, t-interval over seeds, at the "
           "end of training (each run's last epoch; a run that does not save it is not run)."]
    be = frames["by_epoch"]
    if len(be) and be.epoch.nunique() > 1:
        out.append(f"Against training length (table `by_epoch`, figure `_effect`), epochs {sorted(int(e) for e in be.epoch.unique())}, "
                   "shown training view, mean rho [95 % CI]:")
        for (panel, v, ds, m, view), g in be.groupby(["panel", "variant", "dataset", "method", "view"], sort=False):
            if (panel == "knn" and v != p.knn_variants[0]) or (panel != "entropy" and view != p.views(ds)[0]):
                continue
            out.append(f"{PANELS[panel]} trend, {METHOD_LABELS[m]} {DATASET_LABELS[ds]}: " + "; ".join(
                f"ep {int(r.epoch)} {r.effect:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]" for r in g.sort_values("epoch").itertuples()))
        if 0 in set(be.epoch):
            out.append("Epoch 0 is the untrained network: a trend already there is not learned by the SSL training. "
                       "The descriptive checks `change since initialisation` (rho at the last epoch minus rho at "
                       "epoch 0, paired by seed) say how much of each trend training added; they are shown, not "
                       "counted in the verdict, since the paper's claim is about the trained network's norms.")
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
