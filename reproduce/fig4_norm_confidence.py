"""Figure 4 of the paper: embedding norms encode confidence (PAPER.md claim 5).

Three panels, SimCLR and SimSiam, x = embedding norm min-max normalised to [0, 1] over the data
set and cut into 20 buckets of width 0.05:

- left: per bucket, accuracy of a leave-one-out kNN classifier (k = 10, cosine) fit on all
  training embeddings (buckets with >= 10 samples drawn); CIFAR-10 (``paper`` adds CIFAR-100
  and ImageNet-100 where available);
- middle: per bucket, agreement of the CIFAR-10N aggregate human label with the true label on
  the training images (buckets with >= 50 samples; CIFAR-100N noisy label in ``paper``);
- right: per bucket, mean entropy (bits) of the CIFAR-10H human label distribution on the
  (un-augmented) test images (buckets with >= 50 samples).

The embedding is the projector output z (PAPER.md: "Figure-4 analyses use the projector embedding";
``embedding: loss`` uses the predictor output p that SimSiam's loss normalises instead).
The training embeddings are those of one augmented view per image (the released code's choice,
``train_view: augmented``) or of the un-augmented images; the figure named
``fig4_norm_confidence`` shows ``train_view`` and, with ``both_views``, the other view is saved as
``fig4_norm_confidence_<view>``. The runs are the default CIFAR-10 runs shared with the other
artifacts (``plan.run(method, method, {})``).
"""

from __future__ import annotations

from typing import Any, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from embedding_norms.analysis import (align_human_labels, bucket_statistics, bucket_trend, human_label_entropy,
                                      knn_loo_correct)
from embedding_norms.config import DATASETS, METHODS, ConfigError
from embedding_norms.data import DataError, HumanLabelError, load_cifar10h, load_cifar10n, load_cifar100n
from embedding_norms.plotting import METHOD_COLORS, METHOD_LABELS
from embedding_norms.runs import EMBEDDINGS, embedding_of, write_frame
from reproduce.common import Artifact, BuildContext, Plan, RunSpec, main_single
from reproduce.experiments import base_run

NAME = "fig4_norm_confidence"

DEFAULTS: dict[str, Any] = {
    "methods": ["simclr", "simsiam"],
    "datasets": ["cifar10"],          # paper: cifar10, cifar100, imagenet100
    "n_buckets": 20,
    "knn_k": 10,
    "min_count_knn": 10,              # buckets with fewer samples are not drawn (left panel)
    "min_count_human": 50,            # same for the human-label panels (middle, right)
    "train_view": "augmented",        # released code: one augmented view of each training image
    "embedding": "projector",         # PAPER.md: projector output z; "loss": predictor output for SimSiam
    "both_views": True,               # also build the figure of the other view
}

#: Datasets of the figure; each uses the method's base run on it (``reproduce.experiments.base_run``),
#: shared with the other artifacts.
SUPPORTED_DATASETS = ("cifar10", "cifar100", "imagenet100")
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet100": "ImageNet-100"}

#: view name -> run-store split of the training embeddings
VIEWS = {"augmented": "train_aug", "unaugmented": "train"}
VIEW_TEXT = {"augmented": "one augmented view of each training image (released code's choice)",
             "unaugmented": "un-augmented training images"}

#: Human-label sources: what the file must be, for messages (file names and expected shapes).
EXPECTED = {
    "cifar10n": "CIFAR-10N file cifar10n_labels.npz or CIFAR-10_human.pt with int keys clean_label, "
                "aggre_label of shape (50000,) in original CIFAR-10 train order",
    "cifar100n": "CIFAR-100N file cifar100n_labels.npz or CIFAR-100_human.pt with int keys clean_label, "
                 "noisy_label of shape (50000,) in original CIFAR-100 train order",
    "cifar10h": "CIFAR-10H file cifar10h-probs.npy, float (10000, 10) in original CIFAR-10 test order",
}
#: dataset -> (human source, key of the human label) for the middle panel
TRAIN_HUMAN = {"cifar10": ("cifar10n", "aggre_label"), "cifar100": ("cifar100n", "noisy_label")}

PANELS = {
    "knn": ("kNN accuracy (%)", "kNN accuracy (k={k}, cosine, leave-one-out)"),
    "agreement": ("human label = true label (%)", "human-label agreement (train)"),
    "entropy": ("human label entropy (bits)", "CIFAR-10H entropy (test, un-augmented)"),
}


def _label(method: str, dataset: str) -> str:
    return method if dataset == "cifar10" else f"{method}-{dataset}"


def _params(p: dict[str, Any], source: str) -> dict[str, Any]:
    for m in p["methods"]:
        if m not in METHODS:
            raise ConfigError(f"{source}: artifacts.{NAME}.methods: unknown method {m!r}; choose from {', '.join(METHODS)}")
    for d in p["datasets"]:
        if d not in SUPPORTED_DATASETS:
            raise ConfigError(f"{source}: artifacts.{NAME}.datasets: {d!r} not supported; choose from "
                              f"{', '.join(SUPPORTED_DATASETS)} (known datasets: {', '.join(DATASETS)})")
    if p["train_view"] not in VIEWS:
        raise ConfigError(f"{source}: artifacts.{NAME}.train_view must be one of {', '.join(VIEWS)}, got {p['train_view']!r}")
    if p["embedding"] not in EMBEDDINGS:
        raise ConfigError(f"{source}: artifacts.{NAME}.embedding must be one of {', '.join(EMBEDDINGS)}, "
                          f"got {p['embedding']!r}")
    if p["n_buckets"] < 2 or p["knn_k"] < 1:
        raise ConfigError(f"{source}: artifacts.{NAME}: need n_buckets >= 2 and knn_k >= 1")
    return p


def runs(plan: Plan) -> list[RunSpec]:
    """The training runs this artifact needs at ``plan``'s profile (see the module docstring)."""
    p = _params(plan.params(NAME, DEFAULTS), f"profile {plan.profile}")
    return [base_run(plan, m, ds, label=_label(m, ds)) for ds in p["datasets"] for m in p["methods"]]


class _Human:
    """Loads each human-label file once; remembers why one cannot be used."""

    def __init__(self, data_dir: Optional[str]):
        self.data_dir = data_dir
        self.cache: dict[str, tuple[Any, str]] = {}

    def get(self, kind: str) -> tuple[Any, str]:
        """(data, '') for a human-label source, or (None, reason) when it cannot be used."""
        if kind not in self.cache:
            if self.data_dir is None:
                self.cache[kind] = (None, f"no data folder given (--data-dir or EMBEDDING_NORMS_DATA); "
                                          f"needs the {EXPECTED[kind]}")
            else:
                loader = {"cifar10n": load_cifar10n, "cifar100n": load_cifar100n, "cifar10h": load_cifar10h}[kind]
                try:
                    self.cache[kind] = (loader(self.data_dir), "")
                except DataError as exc:  # HumanLabelError is a DataError
                    self.cache[kind] = (None, f"{exc} (expected: {EXPECTED[kind]})")
        return self.cache[kind]


def _rows(table: pd.DataFrame, **keys: Any) -> pd.DataFrame:
    t = table.copy()
    for k, v in keys.items():
        t.insert(0, k, v)
    return t


def build(ctx: BuildContext) -> None:
    """Build the figure, tables, numbers and claim checks from the runs (see the module docstring)."""
    p = _params(ctx.params(DEFAULTS), f"profile {ctx.profile}")
    nb, k = int(p["n_buckets"]), int(p["knn_k"])
    views = [p["train_view"]] + ([v for v in VIEWS if v != p["train_view"]] if p["both_views"] else [])
    human = _Human(ctx.plan.data_dir)
    frames: list[pd.DataFrame] = []
    skipped_panels: dict[tuple[str, str, str], str] = {}  # (panel, method, dataset) -> reason
    skip_seen: set[tuple[str, str]] = set()

    def skip(part: str, reason: str, run: Optional[str] = None) -> None:
        if (part, reason) not in skip_seen:
            skip_seen.add((part, reason))
            ctx.skip(part, reason, run=run)

    def skip_panel(panel: str, method: str, ds: str, part: str, reason: str, short: Optional[str] = None) -> None:
        """A human-label panel not drawn for (method, ds): noted in the figure (``short``) and REPORT.md."""
        skipped_panels[(panel, method, ds)] = short or reason
        skip(part, reason)

    STANDIN = ("run trained on generated stand-in images",
               "the run was trained on generated stand-in images (data not available), so human labels do not apply")

    for ds in p["datasets"]:
        for method in p["methods"]:
            h = ctx.run(_label(method, ds))
            if not h.usable:
                st = h.status
                skip(f"{METHOD_LABELS[method]} on {DATASET_LABELS[ds]}", f"run {h.label} {st.state}"
                     + (f": {st.reason}" if st.reason else ""), run=h.label)
                continue
            try:
                emb = h.embeddings()
            except FileNotFoundError as exc:
                skip(f"{METHOD_LABELS[method]} on {DATASET_LABELS[ds]}", str(exc))
                continue
            standin = h.cfg.data.standin
            for view in views:
                split = VIEWS[view]
                try:
                    vectors, norms = embedding_of(emb, split, p["embedding"])
                except KeyError as exc:
                    skip(f"{h.label} {view} view", str(exc.args[0]))
                    continue
                labels = emb[f"{split}/labels"]
                try:
                    correct = knn_loo_correct(vectors, labels, k)
                    t = bucket_statistics(norms, {"value": 100.0 * correct}, nb, int(p["min_count_knn"]))
                except ValueError as exc:
                    skip(f"{h.label} {view} view", str(exc))
                    continue
                frames.append(_rows(t, view=view, dataset=ds, method=method, panel="knn"))
                if ds not in TRAIN_HUMAN:
                    continue
                kind, key = TRAIN_HUMAN[ds]
                part = f"middle panel ({kind}) for {h.label}"
                if standin:
                    skip_panel("agreement", method, ds, part, STANDIN[1], STANDIN[0])
                    continue
                data, why = human.get(kind)
                if data is None:
                    skip_panel("agreement", method, ds, f"middle panel ({kind})", why)
                    continue
                try:
                    hl = align_human_labels(data[key], emb[f"{split}/indices"], labels,
                                            f"{kind} {key} ({EXPECTED[kind]})", min_agreement=0.3,
                                            reference=data["clean_label"])
                except HumanLabelError as exc:
                    skip_panel("agreement", method, ds, part, str(exc))
                    continue
                t = bucket_statistics(norms, {"value": 100.0 * (hl == labels)}, nb, int(p["min_count_human"]))
                frames.append(_rows(t, view=view, dataset=ds, method=method, panel="agreement"))
            if ds != "cifar10":
                continue
            part = f"right panel (CIFAR-10H) for {h.label}"
            if standin:
                skip_panel("entropy", method, ds, part, STANDIN[1], STANDIN[0])
                continue
            probs, why = human.get("cifar10h")
            if probs is None:
                skip_panel("entropy", method, ds, "right panel (cifar10h)", why)
                continue
            try:
                ph = align_human_labels(probs, emb["test/indices"], emb["test/labels"],
                                        f"cifar10h ({EXPECTED['cifar10h']})", min_agreement=0.95)
                test_norms = embedding_of(emb, "test", p["embedding"], vectors=False)[1]
                t = bucket_statistics(test_norms, {"value": human_label_entropy(ph)}, nb, int(p["min_count_human"]))
            except (HumanLabelError, ValueError) as exc:
                skip_panel("entropy", method, ds, part, str(exc))
                continue
            frames.append(_rows(t, view="test", dataset=ds, method=method, panel="entropy"))

    cols = ["panel", "method", "dataset", "view", "bucket", "lo", "hi", "mid", "count", "value"]
    buckets = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    path = ctx.out.tables / f"{NAME}_buckets.csv"
    write_frame(path, buckets)
    ctx.add_table_file(path)

    # ---- trends and claim checks
    summary = []
    for (panel, method, ds, view), t in buckets.groupby(["panel", "method", "dataset", "view"], sort=False):
        tr = bucket_trend(t, "value")
        t = t.sort_values("bucket")
        summary.append({"panel": panel, "method": method, "dataset": ds, "view": view,
                        "buckets": int(tr["n_buckets"]), "samples": int(t["count"].sum()),
                        "spearman_rho": tr["rho"], "p_value": tr["p"],
                        "monotone": {1.0: "rising", -1.0: "falling", 0.0: "no"}.get(tr["monotone"], "n/a"),
                        "lowest_bucket": float(t["value"].iloc[0]), "highest_bucket": float(t["value"].iloc[-1])})
    order = {"knn": 0, "agreement": 1, "entropy": 2}
    summary.sort(key=lambda r: (order[r["panel"]], p["datasets"].index(r["dataset"]), p["methods"].index(r["method"]),
                                r["view"] != p["train_view"]))
    if summary:
        ctx.save_table(pd.DataFrame(summary))
    ctx.number("trends", {f"{r['panel']}/{r['method']}/{r['dataset']}/{r['view']}":
                          {"rho": r["spearman_rho"], "p": r["p_value"], "buckets": r["buckets"],
                           "lowest": r["lowest_bucket"], "highest": r["highest_bucket"]} for r in summary})
    ctx.number("train_view_shown", p["train_view"])
    ctx.number("settings", {k2: p[k2] for k2 in ("n_buckets", "knn_k", "min_count_knn", "min_count_human")})

    for row in summary:
        rho = row["spearman_rho"]
        ok = None if not np.isfinite(rho) else (rho > 0 if row["panel"] != "entropy" else rho < 0)
        who = f"{METHOD_LABELS[row['method']]} {DATASET_LABELS[row['dataset']]}"
        unit = "%" if row["panel"] != "entropy" else " bits"
        detail = (f"p={row['p_value']:.2g}, {row['buckets']} buckets, lowest -> highest bucket "
                  f"{row['lowest_bucket']:.3g}{unit} -> {row['highest_bucket']:.3g}{unit}, monotone: {row['monotone']}")
        if row["panel"] == "knn":
            ctx.check("norm-knn", f"{who}, train embeddings ({row['view']}): kNN accuracy vs norm bucket",
                      "Spearman rho (buckets)", rho, "> 0", ok, detail)
        elif row["panel"] == "agreement":
            ctx.check("norm-human", f"{who}, train embeddings ({row['view']}): human-label agreement vs norm bucket",
                      "Spearman rho (buckets)", rho, "> 0", ok, detail)
        else:
            ctx.check("norm-human", f"{who}, test embeddings: CIFAR-10H entropy vs norm bucket",
                      "Spearman rho (buckets)", rho, "< 0", ok, detail)
    for (panel, method, ds), why in skipped_panels.items():
        test = ("human-label agreement vs norm bucket" if panel == "agreement" else "CIFAR-10H entropy vs norm bucket")
        ctx.check("norm-human", f"{METHOD_LABELS[method]} {DATASET_LABELS[ds]}: {test}", "Spearman rho (buckets)",
                  None, "> 0" if panel == "agreement" else "< 0", None, f"not evaluated: {why}")

    ctx.note(f"Figure `{NAME}` shows the training embeddings of {VIEW_TEXT[p['train_view']]}"
             + (f"; `{NAME}_{views[1]}` shows {VIEW_TEXT[views[1]]}" if len(views) > 1 else "")
             + ". The CIFAR-10H panel always uses the un-augmented test images.")
    emb_text = ("the projector output z (PAPER.md: 'Figure-4 analyses use the projector embedding'; for SimSiam "
                "this is not the predictor output p that its loss normalises; option `embedding: loss`)"
                if p["embedding"] == "projector" else
                "the embedding the loss normalises (projector output for SimCLR, predictor output for SimSiam; "
                "PAPER.md's choice is `embedding: projector`)")
    ctx.number("embedding", p["embedding"])
    ctx.note(f"kNN: k = {k}, cosine, fit on all training embeddings of the run, each image predicted from its k "
             f"nearest *other* images (leave-one-out, unweighted majority). Embedding and norms: {emb_text}; norms "
             f"min-max normalised "
             f"per run and split, {nb} buckets; buckets with < {p['min_count_knn']} (kNN) or "
             f"< {p['min_count_human']} (human labels) images are not drawn. Claim checks: Spearman rho between "
             f"bucket index and the per-bucket value over the drawn buckets.")

    # ---- figures
    if buckets.empty:
        ctx.skip("figure", "no panel could be computed (see the reasons above)")
        return
    for i, view in enumerate(views):
        fig = _figure(buckets, view, p, skipped_panels)
        ctx.save_figure(fig, "" if i == 0 else f"_{view}")


def _figure(buckets: pd.DataFrame, view: str, p: dict[str, Any], skipped: dict) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9))
    methods = list(p["methods"])
    palette = {m: METHOD_COLORS[m] for m in methods}
    for ax, panel in zip(axes, ("knn", "agreement", "entropy")):
        ylabel, title = PANELS[panel]
        sel = buckets[(buckets.panel == panel) & (buckets.view == (view if panel != "entropy" else "test"))]
        if len(sel):
            d = sel.assign(dataset=sel["dataset"].map(DATASET_LABELS))
            sns.lineplot(data=d, x="mid", y="value", hue="method", hue_order=[m for m in methods if m in set(d.method)],
                         style="dataset" if d["dataset"].nunique() > 1 else None, palette=palette, marker="o",
                         markersize=4, ax=ax, errorbar=None)
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles, [METHOD_LABELS.get(lab, lab) for lab in labels], fontsize="small")
        else:
            reasons = sorted({why for (pn, _, _), why in skipped.items() if pn == panel})
            msg = "not drawn (see REPORT.md)" + (":\n" + "\n".join(_wrap(r) for r in reasons[:2]) if reasons else "")
            ax.text(0.5, 0.5, msg, ha="center", va="center", fontsize=7, transform=ax.transAxes, wrap=True)
        ax.set_xlim(0, 1)
        ax.set_xlabel("normalised embedding norm (bucket)")
        ax.set_ylabel(ylabel)
        if panel == "agreement":
            title = " / ".join(n for d, n in (("cifar10", "CIFAR-10N"), ("cifar100", "CIFAR-100N")) if d in p["datasets"])
            title += " agreement (train)"
        minimum = p["min_count_knn"] if panel == "knn" else p["min_count_human"]
        ax.set_title(title.format(k=p["knn_k"]) + f"\nbuckets with >= {minimum} images", fontsize="small")
    fig.suptitle(f"Train embeddings: {VIEW_TEXT[view]}; test embeddings un-augmented", fontsize="medium")
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:4])


ARTIFACT = Artifact(
    name=NAME,
    paper_ref="Figure 4",
    title="Embedding norms encode confidence: kNN accuracy, human agreement and human uncertainty per norm bucket",
    claims=("norm-knn", "norm-human"),
    runs=runs,
    build=build,
)

if __name__ == "__main__":
    raise SystemExit(main_single(ARTIFACT))
