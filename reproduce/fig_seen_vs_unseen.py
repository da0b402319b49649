"""Seen vs unseen images: embedding norms of training images, test images and novel images
(PAPER.md claim 5, the paper's seen-vs-unseen analysis next to Figure 4), over seeds.

Design (``design`` parameter):

- ``holdout`` (``quick`` / ``smoke``, issues 15 and 20): a model trained on ``n_train`` CIFAR-10 images
  (class-stratified) of the classes *not* held out, for ``epochs`` epochs with the released
  warm-up fraction (10/512 of the run, cosine over the run) and batch ``batch_size`` (SimSiam /
  BYOL: half of it x accumulation 2). ``n_train`` is a multiple of ``batch_size``, so every training
  image is seen exactly once per epoch (the training loop drops the remainder of an epoch) and the
  epoch axis counts passes over each image. Embeddings are saved at ``saved_epochs``; kNN is
  evaluated at epoch 0 and the last epoch (the learning gate). Seen = its training images, unseen =
  test images of the same classes, novel = test images of the held-out classes. The held-out classes
  rotate with the seed (seed ``s`` holds out ``holdouts[s % len(holdouts)]``); consecutive entries
  of ``holdouts`` swap classes between seen and novel, so seeds ``2k`` and ``2k + 1`` form a pair in
  which (by default) every class is novel once and seen once.
- ``cifar100`` (the paper's, ``paper`` profile): each method's CIFAR-10 base run with CIFAR-100
  test images saved as the novel set; the epochs are the run's own ``save_embeddings_epochs``.

Effects. ``test vs train`` (same classes on both sides): ``AUROC - 0.5`` per seed (score = -norm,
positive = unseen) with its bootstrap standard error. ``novel vs test`` and ``novel vs train``: in
``holdout`` a per-run AUROC compares *other classes* (it measured which classes were held out: +0.086
with classes 0-4 novel, -0.026 with 5-9), so the checks use the class-paired contrast
(:func:`embedding_norms.analysis.class_paired_novelty`): per seed pair, each class's mean log norm
when novel against its mean log norm when seen (its test or its training images), with class
identity and the run scales cancelled; t-interval over pairs. The per-run AUROCs are kept as
descriptive. ``cifar100``: every comparison is the per-seed AUROC
(:func:`embedding_norms.stats.combined_interval`: the same images in every seed). Checks at the last
saved epoch, gated on the runs having learned (kNN gain over epoch 0); the effect at every saved
epoch is a table and a figure panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from embedding_norms.analysis import class_paired_novelty, novelty_auroc
from embedding_norms.config import METHODS
from embedding_norms.plotting import (METHOD_LABELS, epoch_axis, legend_or_note, method_style, plot_effect_by_epoch,
                                      wrap)
from embedding_norms.report import ClaimCheck
from embedding_norms.runs import VECTORS, embedding_of
from embedding_norms.stats import combined_interval, learning_gate, seed_interval
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import base_run, knn_gain

PAPER_REF = "Section 5 (seen vs unseen, next to Figure 4)"
TITLE = "Training images get larger embedding norms than unseen and novel images"
CLAIMS = ("seen-unseen",)
VECTOR = "projector output z (option: predictor output p)"

DESIGNS = ("holdout", "cifar100")
#: comparison -> (seen split, unseen split)
COMPARISONS = {"test vs train": ("train", "test"), "novel vs test": ("test", "novel"), "novel vs train": ("train", "novel")}
#: comparisons across classes: decided class-paired in design ``holdout``
NOVEL = ("novel vs test", "novel vs train")
NUM_CLASSES = 10


@dataclass(frozen=True)
class Params:
    """``artifacts.fig_seen_vs_unseen`` of a profile (``n_train`` .. ``holdouts``: design ``holdout`` only)."""

    methods: tuple[str, ...] = ("simclr", "simsiam")
    design: str = "holdout"                         # paper: cifar100
    n_train: int = 512                              # class-stratified over the seen classes; a multiple of batch_size
    epochs: int = 90
    saved_epochs: tuple[int, ...] = (15, 30, 60, 90)
    batch_size: int = 128                           # images per optimizer step (SimSiam/BYOL: 64 x 2)
    seeds: Optional[int] = None                     # training seeds of this artifact (None: the profile's seeds)
    holdouts: tuple[tuple[int, ...], ...] = ((5, 6, 7, 8, 9), (0, 1, 2, 3, 4), (0, 2, 4, 6, 8), (1, 3, 5, 7, 9))
    n_boot: int = 1000                              # bootstrap resamples per AUROC
    vector: str = "z"                               # z = projector output; p = predictor output

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; choose from {', '.join(METHODS)}")
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {', '.join(DESIGNS)}, got {self.design!r}")
        if self.vector not in VECTORS:
            raise ValueError(f"vector must be one of {', '.join(VECTORS)}, got {self.vector!r}")
        if self.vector == "p" and "simclr" in self.methods:
            raise ValueError("vector p (predictor output) needs methods with a predictor; SimCLR has none")
        if self.n_boot < 2:
            raise ValueError(f"n_boot must be >= 2 (the interval needs a bootstrap error), got {self.n_boot}")
        if self.epochs < 1 or not self.saved_epochs or self.epochs not in self.saved_epochs \
                or any(not 1 <= e <= self.epochs for e in self.saved_epochs):
            raise ValueError(f"saved_epochs must lie in 1..epochs and include epochs ({self.epochs}, the epoch of the "
                             f"checks), got {list(self.saved_epochs)}")
        if self.batch_size < 4 or self.batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 4 (SimSiam/BYOL use half of it x accumulation 2), "
                             f"got {self.batch_size}")
        if not self.holdouts:
            raise ValueError("holdouts must list at least one tuple of held-out classes")
        for h in self.holdouts:
            if len(set(h)) != len(h) or not h or any(not 0 <= c < NUM_CLASSES for c in h) \
                    or NUM_CLASSES - len(h) < 2:
                raise ValueError(f"holdouts: {list(h)} must be distinct CIFAR-10 class ids 0..9 leaving >= 2 seen classes")
            if self.n_train < max(self.batch_size, NUM_CLASSES - len(h)):
                raise ValueError(f"n_train ({self.n_train}) must be >= batch_size ({self.batch_size}) and >= the number "
                                 f"of seen classes ({NUM_CLASSES - len(h)})")
        if self.n_train % self.batch_size:
            raise ValueError(f"n_train ({self.n_train}) must be a multiple of batch_size ({self.batch_size}): the training "
                             f"loop drops the rest of an epoch, so otherwise {self.n_train % self.batch_size} images per "
                             f"epoch go unseen (e.g. n_train {self.n_train // self.batch_size * self.batch_size} or "
                             f"{(self.n_train // self.batch_size + 1) * self.batch_size})")
        if self.seeds is not None and self.seeds < 1:
            raise ValueError(f"seeds must be >= 1 or null (the profile's seeds), got {self.seeds}")
        if len(self.holdouts) % 2:
            raise ValueError(f"holdouts must come in pairs (seeds 2k and 2k+1 are compared class by class), got "
                             f"{len(self.holdouts)} entries")
        for a, b in zip(self.holdouts[::2], self.holdouts[1::2]):
            if not (set(a) - set(b)) or not (set(b) - set(a)):
                raise ValueError(f"holdouts {list(a)} and {list(b)} (a seed pair) must each hold out a class the other "
                                 "trains on, so that some classes are novel in one seed and seen in the other")

    def holdout(self, seed: int) -> tuple[int, ...]:
        """The classes held out for training seed ``seed``."""
        return tuple(self.holdouts[seed % len(self.holdouts)])

    def seed_list(self, plan: Plan) -> tuple[int, ...]:
        """The training seeds: ``0 .. seeds - 1``, or the profile's seeds when ``seeds`` is None."""
        return tuple(range(self.seeds)) if self.seeds is not None else plan.seeds


class Key(NamedTuple):
    method: str
    seed: int


def _holdout_overrides(method: str, seed: int, p: Params) -> dict[str, Any]:
    held = p.holdout(seed)
    seen = [c for c in range(NUM_CLASSES) if c not in held]
    bs, acc = (p.batch_size, 1) if method == "simclr" else (p.batch_size // 2, 2)
    return {"data": {"classes": seen, "train_size": p.n_train},
            "eval": {"novel": "heldout"},
            # warm-up: optim.warmup_fraction (10/512) of the run, the cosine over the run
            "optim": {"batch_size": bs, "accumulation_steps": acc, "schedule_epochs": None},
            # the probe set is part of the training set: all n_train images (a larger profile
            # train.probe_size is refused while planning, no longer silently capped)
            # kNN at epoch 0 and at the end: the learning gate
            "train": {"epochs": p.epochs, "eval_epochs": [0, p.epochs], "save_embeddings_epochs": sorted(p.saved_epochs),
                      "probe_size": p.n_train}}


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """One run per method and seed: the holdout design's run, or the base run with CIFAR-100 as novel set."""
    out = {}
    for m in p.methods:
        for s in p.seed_list(plan):
            if p.design == "holdout":
                tag = f"seen-unseen/n={p.n_train}/holdout={'-'.join(map(str, p.holdout(s)))}"
                out[Key(m, s)] = base_run(plan, m, s, extra=_holdout_overrides(m, s, p), tag=tag)
            else:
                out[Key(m, s)] = base_run(plan, m, s, extra={"eval": {"novel": "cifar100"}}, tag="novel-cifar100")
    return out


def _per_class(emb: dict, split: str, vector: str, ids: list[int]) -> dict[int, float]:
    """Mean log norm per class of one split (keys: CIFAR-10 class ids; ``ids[k]`` is label ``k``)."""
    _, norms = embedding_of(emb, split, vector, vectors=False)
    logn, labels = np.log(norms.astype(np.float64)), emb[f"{split}/labels"]
    return {ids[k]: float(logn[labels == k].mean()) for k in np.unique(labels)}


def frames(runs: dict[Key, Any], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: effect (AUROC - 0.5) per method, comparison and saved epoch with its interval over
    seeds; ``auroc``: per seed; ``paired``: the class-paired novel effects per seed pair and epoch
    (design ``holdout``); ``paired_by_epoch``: their interval over pairs; ``norms``: norm summaries per
    split; ``_images``: per-image norms at each run's last saved epoch; ``_classes``: per run, epoch,
    split and class the mean log norm; ``_gains``: kNN gain of each run; ``_skipped``: runs without
    usable embeddings."""
    aurocs, norm_rows, images, skipped, classes, gains = [], [], [], [], [], []
    for key, run in runs.items():
        if not run.usable:
            continue                                   # recorded once by the builder
        gains.append({**key._asdict(), "label": run.label, "gain": knn_gain(run)})
        held = "-".join(map(str, p.holdout(key.seed))) if p.design == "holdout" else "cifar100"
        epochs = sorted(run.cfg.train.save_embeddings_epochs)
        for epoch in epochs:
            try:
                emb = run.embeddings(epoch)
                norms = {s: embedding_of(emb, s, p.vector, vectors=False)[1].astype(np.float64)
                         for s in ("train", "test", "novel")}
            except (FileNotFoundError, KeyError, ValueError) as exc:
                skipped.append({**key._asdict(), "epoch": epoch, "reason": str(exc.args[0] if exc.args else exc)})
                continue
            bad = [s for s, n in norms.items() if n.size == 0 or not np.isfinite(n).all() or (n <= 0).any()]
            if bad:
                skipped.append({**key._asdict(), "epoch": epoch, "reason": f"empty, zero or non-finite norms in {bad}"})
                continue
            for s, n in norms.items():
                norm_rows.append({**key._asdict(), "epoch": epoch, "split": s, "images": n.size,
                                  "mean_norm": float(n.mean()), "median_norm": float(np.median(n))})
                if epoch == epochs[-1]:
                    images.append(pd.DataFrame({**key._asdict(), "set": s, "norm": n}))
            if p.design == "holdout":
                seen_ids = list(run.cfg.data.classes)
                rest = [c for c in range(NUM_CLASSES) if c not in seen_ids]
                for s, ids in (("train", seen_ids), ("test", seen_ids), ("novel", rest)):
                    for c, v in _per_class(emb, s, p.vector, ids).items():
                        classes.append({**key._asdict(), "epoch": epoch, "split": s, "class": c, "mean_log_norm": v})
            for i, (comp, (seen, unseen)) in enumerate(COMPARISONS.items()):
                r = novelty_auroc(norms[seen], norms[unseen], p.n_boot, seed=1000 * key.seed + epoch * 10 + i)
                aurocs.append({**key._asdict(), "held_out": held, "epoch": epoch, "comparison": comp,
                               "auroc": r["auroc"], "effect": r["auroc"] - 0.5, "se": r["se"], "ci_low": r["ci_low"],
                               "ci_high": r["ci_high"], "n_seen": int(r["n_seen"]), "n_unseen": int(r["n_unseen"])})
    per_seed = pd.DataFrame(aurocs)
    rows = []
    if len(per_seed):
        for (m, comp, epoch), g in per_seed.groupby(["method", "comparison", "epoch"], sort=True):
            g = g.sort_values("seed")
            iv = _interval(g, p)
            rows.append({"method": m, "comparison": comp, "epoch": int(epoch), "effect": iv.mean, "ci_low": iv.low,
                         "ci_high": iv.high, "seeds": iv.n, "per_seed": [round(float(v), 4) for v in g["effect"]],
                         "per_seed_se": [round(float(v), 4) for v in g["se"]]})
    cls = pd.DataFrame(classes)
    paired = paired_novel_effects(cls, p) if len(cls) else pd.DataFrame()
    by_epoch = []
    for (m, comp, epoch), g in (paired.groupby(["method", "comparison", "epoch"], sort=True) if len(paired) else []):
        iv = seed_interval(g.sort_values("pair")["effect"].tolist())
        by_epoch.append({"method": m, "comparison": comp, "epoch": int(epoch), "effect": iv.mean, "ci_low": iv.low,
                         "ci_high": iv.high, "pairs": iv.n, "per_pair": [round(float(v), 4) for v in g["effect"]]})
    return {"": pd.DataFrame(rows), "auroc": per_seed, "paired": paired, "paired_by_epoch": pd.DataFrame(by_epoch),
            "norms": pd.DataFrame(norm_rows),
            "_images": pd.concat(images, ignore_index=True) if images else pd.DataFrame(columns=["method", "seed", "set", "norm"]),
            "_classes": cls, "_gains": pd.DataFrame(gains), "_skipped": pd.DataFrame(skipped)}


def paired_novel_effects(classes: pd.DataFrame, p: Params) -> pd.DataFrame:
    """Class-paired novel effects of the seed pairs ``(2k, 2k + 1)`` (design ``holdout``).

    Args:
        classes: rows ``method, seed, epoch, split, class, mean_log_norm`` (``split``: train, test,
            novel; ``class``: CIFAR-10 id).
        p: the parameters (which classes each seed holds out).

    Returns:
        One row per method, comparison (``novel vs test``, ``novel vs train``), epoch and pair where
        both seeds have the epoch: ``pair`` (k), ``seeds``, ``effect`` = seen-minus-novel mean log norm
        of like classes (:func:`~embedding_norms.analysis.class_paired_novelty`), ``scale``,
        ``classes`` (classes that swap roles).
    """
    out = []
    for (m, epoch), g in classes.groupby(["method", "epoch"]):
        present = set(g.seed)
        for a in sorted(s for s in present if s % 2 == 0 and s + 1 in present):
            for comp in NOVEL:
                e = class_paired_novelty(*(_roles(g[g.seed == s], COMPARISONS[comp][0], p.holdout(s)) for s in (a, a + 1)))
                out.append({"method": m, "comparison": comp, "epoch": int(epoch), "pair": a // 2, "seeds": f"{a},{a + 1}",
                            "effect": e["effect"], "scale": e["scale"],
                            "classes": int(e["n_seen_novel"] + e["n_novel_seen"])})
    return pd.DataFrame(out)


def _roles(g: pd.DataFrame, seen_split: str, held: tuple[int, ...]) -> dict[int, tuple[bool, float]]:
    """Per class of one run: (novel, mean log norm) with seen classes read from ``seen_split``."""
    seen = g[(g.split == seen_split) & ~g["class"].isin(held)]
    novel = g[(g.split == "novel") & g["class"].isin(held)]
    r = {int(c): (False, float(v)) for c, v in zip(seen["class"], seen.mean_log_norm)}
    r.update({int(c): (True, float(v)) for c, v in zip(novel["class"], novel.mean_log_norm)})
    return r


def _interval(g: pd.DataFrame, p: Params):
    """Interval of the mean AUROC effect over seeds. ``holdout`` rotates the held-out classes with
    the seed, so every seed scores other images: the image-sampling noise is already inside the
    seed spread (Student-t over seeds). ``cifar100``: every seed scores the same images, so the
    per-seed bootstrap variance is added to the seed spread (:func:`combined_interval`)."""
    if p.design == "holdout":
        return seed_interval(g["effect"].tolist())
    return combined_interval(g["effect"], g["se"])


def _regime(p: Params) -> str:
    if p.design == "holdout":
        return (f"holdout: {p.n_train} images x {p.epochs} epochs, held-out classes rotate with the seed, vector {p.vector}")
    return f"cifar100 (paper): CIFAR-10 base run, novel = CIFAR-100 test, vector {p.vector}"


def _gate(frames: dict[str, pd.DataFrame], method: str) -> tuple[Optional[str], str]:
    """The learning gate over the method's runs, and their gains for the detail."""
    g = frames["_gains"]
    g = g[g.method == method].sort_values("seed") if len(g) else g
    if not len(g):
        return None, ""
    return learning_gate(dict(zip(g.label, g.gain))), f"kNN gain per seed {[round(x, 1) for x in g.gain]}"


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per method at the design's last saved epoch, gated on the method's runs having learned (kNN
    gain over epoch 0 >= 5 points; ``holdout``: kNN over the 5 seen classes, chance 20 %).
    ``test vs train``: ``AUROC - 0.5`` per seed (> 0). ``novel vs test`` / ``novel vs train``: in
    ``holdout`` the class-paired seen-minus-novel log-norm difference per seed pair (> 0), beside the
    per-run AUROC as descriptive (it compares other classes); in ``cifar100`` the per-seed AUROC."""
    a, pr = frames["auroc"], frames["paired"]
    last = max(p.saved_epochs) if p.design == "holdout" else None
    out = []
    for m in p.methods:
        gate, gains = _gate(frames, m)
        for comp in COMPARISONS:
            test = f"{METHOD_LABELS[m]}: small norm => unseen, {comp}"
            paired = p.design == "holdout" and comp in NOVEL
            sub = a[(a.method == m) & (a.comparison == comp)] if len(a) else a
            if len(sub):  # the design's last epoch for every seed (never another epoch for a seed that lacks it)
                sub = sub[sub.epoch == (last if last is not None else sub.epoch.max())].sort_values("seed")
            if not len(sub):
                out.append(ClaimCheck.from_effects("seen-unseen", test, "AUROC - 0.5", [], regime=_regime(p),
                                                   detail="runs missing or not finished"))
                continue
            iv = _interval(sub, p)
            detail = (f"epoch {sorted(set(sub.epoch.astype(int)))}, AUROC per seed {[round(v, 3) for v in sub.auroc]}, "
                      f"bootstrap SE {[round(v, 3) for v in sub.se]}, held out {sub.held_out.tolist()}, "
                      f"{int(sub.n_unseen.iloc[0])} unseen vs {int(sub.n_seen.iloc[0])} seen images; {gains}")
            if paired:
                detail = "other classes on the two sides: shows which classes are held out, see the class-paired check; " + detail
            out.append(ClaimCheck.from_effects("seen-unseen", test + (" (per run, across classes)" if paired else ""),
                                               "AUROC (score = -norm, positive = unseen)",
                                               sub["effect"].tolist(), "> 0", _regime(p), detail, interval=iv,
                                               descriptive=paired, untestable=gate, null=0.5,
                                               method=METHOD_LABELS[m], vector=p.vector, variant=comp))
            if paired:
                q = pr[(pr.method == m) & (pr.comparison == comp) & (pr.epoch == last)].sort_values("pair") if len(pr) else pr
                seen = COMPARISONS[comp][0]
                out.append(ClaimCheck.from_effects(
                    "seen-unseen", f"{METHOD_LABELS[m]}: small norm => unseen, {comp}, class-paired",
                    f"mean log norm of a class when seen ({seen} images) minus when novel, per seed pair",
                    q.effect.tolist() if len(q) else [], "> 0", _regime(p),
                    (f"epoch {last}; seed pairs {q.seeds.tolist()}, classes swapping roles per pair {q.classes.tolist()}; "
                     f"t-interval over pairs; {gains}") if len(q) else "no complete seed pair",
                    untestable=gate))
    return out


#: style index (:data:`embedding_norms.plotting.VARIANT_STYLES`) of each set and comparison in a method's colour
SET_STYLES = {"test": 1, "novel": 2, "test vs train": 1, "novel vs test": 2, "novel vs train": 3}
#: quantile levels of the top row
QUANTILES = np.linspace(0.05, 0.95, 19)


def quantile_ratios(images: pd.DataFrame) -> pd.DataFrame:
    """Per seed, set (test, novel) and quantile level q: the q-quantile of the set's norms divided by
    the q-quantile of the same run's training-image norms (1 = like the training images; below 1 =
    smaller norms, the claim's direction). ``images``: rows of ``seed``, ``set``, ``norm``."""
    rows = []
    for s, g in images.groupby("seed"):
        ref = np.quantile(g[g.set == "train"].norm, QUANTILES)
        for name in ("test", "novel"):
            n = g[g.set == name].norm
            if len(n) and len(ref):
                rows += [{"seed": s, "set": name, "q": 100 * q, "ratio": r}
                         for q, r in zip(QUANTILES, np.quantile(n, QUANTILES) / ref)]
    return pd.DataFrame(rows, columns=["seed", "set", "q", "ratio"])


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Per method: top, quantile plot of the norms at the last epoch (each quantile of the test and
    novel images over the same quantile of the training images, mean over seeds, band = seed range);
    middle, the AUROC effect against the epoch with its interval over seeds; bottom (``holdout``), the
    class-paired effects against the epoch with their interval over seed pairs."""
    table, images, paired = frames[""], frames["_images"], frames["paired_by_epoch"]
    methods = [m for m in p.methods if len(table) and (table.method == m).any()]
    if not methods:
        return {}
    rows = 3 if len(paired) else 2
    fig, axes = plt.subplots(rows, len(methods), figsize=(5.2 * len(methods), 3.7 * rows), squeeze=False)
    for j, m in enumerate(methods):
        ax, d = axes[0, j], images[images.method == m]
        for name, g in quantile_ratios(d).groupby("set", sort=False):
            by_q = g.groupby("q").ratio
            st = method_style(m, SET_STYLES[name])
            ax.plot(by_q.mean().index, by_q.mean().values, ms=3, label=f"{name} images", **st)
            ax.fill_between(by_q.min().index, by_q.min().values, by_q.max().values, color=st["color"], alpha=0.12, lw=0)
        ax.axhline(1, color="black", lw=0.8, label="train images (reference)")
        n = d.seed.nunique()
        ax.set_title(f"{METHOD_LABELS[m]}: norm quantiles at the last epoch ({n} seed{'s' * (n != 1)})")
        ax.set_xlabel("quantile level (%)")
        ax.set_ylabel(wrap(f"quantile of ||{p.vector}|| / same quantile on train images"))
        legend_or_note(ax, fontsize="x-small")
        comp_styles = {c: method_style(m, SET_STYLES[c]) for c in COMPARISONS}
        plot_effect_by_epoch(axes[1, j], table[table.method == m], "comparison", unit="AUROC - 0.5", styles=comp_styles)
        axes[1, j].set_title("per run (novel: across classes)", fontsize="small")
        if rows == 3:
            plot_effect_by_epoch(axes[2, j], paired[paired.method == m], "comparison", unit="log norm, seen - novel",
                                 styles=comp_styles)
            axes[2, j].set_title("class-paired over seed pairs (like classes)", fontsize="small")
        for a in axes[1:, j]:
            epoch_axis(a, "epoch (= passes over each training image)")
            a.legend(fontsize="x-small")
    fig.suptitle(f"Seen vs unseen ({_regime(p)}); small norm => unseen", fontsize="medium")
    fig.tight_layout()
    return {"": fig}


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """The design, the rotation of the held-out classes, the class pairing and how the intervals are made."""
    if p.design == "holdout":
        out = [f"Design `holdout`: per seed, a model trained on {p.n_train} class-stratified CIFAR-10 images of the "
               f"classes not held out, {p.epochs} epochs (warm-up {p.epochs * 10 / 512:g} epochs = 10/512 of the run, "
               f"cosine over the run), {p.batch_size} images per optimizer step ({p.n_train // p.batch_size} steps per "
               f"epoch: every training image once per epoch); embeddings at epochs {list(p.saved_epochs)}. Novel = test "
               f"images of the held-out classes. The held-out classes rotate with the seed "
               f"({', '.join(str(list(p.holdout(s))) for s in range(len(p.holdouts)))} for seeds 0, 1, ...).",
               "Novel vs test / train, class-paired: seeds 2k and 2k+1 hold out classes the other trains on. Per class "
               "that swaps roles, diff = mean log norm in seed 2k - in seed 2k+1; the effect is (mean diff over classes "
               "seen in 2k - mean diff over classes novel in 2k) / 2 = a class's log norm when seen minus when novel, "
               "with the class's own level and each run's norm scale cancelled; t-interval over the seed pairs (4 seeds "
               "give 2 pairs: 1 degree of freedom). The per-run AUROCs of these comparisons compare other classes and "
               "are descriptive.",
               "Learning gate: kNN accuracy on the test images of the seen classes (5 classes: chance 20 %, bank = the "
               "training images) must rise by >= 5 points from epoch 0 (BatchNorm recalibrated) to the last epoch in every "
               "run of the method. The gate is in points: with 5 classes, 5 points are 6 % of the 80 points above chance "
               "(with 10 classes 6 % of 90: about the same bar) and more than 4 binomial standard errors of one evaluation "
               "(2000 test images, SE <= 1.1 points), so a run that passes has learned measurably."]
    else:
        out = ["Design `cifar100` (the paper's): each method's CIFAR-10 base run; novel = CIFAR-100 test images."]
    out.append(f"Norms of {'the projector output z' if p.vector == 'z' else 'the predictor output p'} on un-augmented "
               "images. AUROC: score = -norm, positive class = the unseen set (0.5 = chance); effect = AUROC - 0.5 per "
               f"seed with its bootstrap standard error ({p.n_boot} resamples of each set); interval over seeds: "
               + ("Student-t over seeds (each seed scores other images)" if p.design == "holdout" else
                  "seed spread + mean per-seed bootstrap variance (stats.combined_interval; the same images in every seed)")
               + ". Checks at the last epoch.")
    sk = frames["_skipped"]
    for reason, g in (sk.groupby("reason") if len(sk) else []):
        out.append(f"Not used ({', '.join(sorted({f'{r.method}/seed={r.seed}/epoch={r.epoch}' for r in g.itertuples()}))}): "
                   f"{reason}")
    return out


if __name__ == "__main__":
    import sys

    from reproduce.runner import main

    raise SystemExit(main(["fig_seen_vs_unseen", *sys.argv[1:]]))
