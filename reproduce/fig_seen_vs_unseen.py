"""Seen vs unseen images: embedding norms of training images, test images and novel images
(PAPER.md claim 5, the paper's seen-vs-unseen analysis next to Figure 4), over seeds.

Design (``design`` parameter):

- ``holdout`` (``quick`` / ``smoke``, issue 15): a model trained on ``n_train`` CIFAR-10 images
  (class-stratified) of the classes *not* held out, for ``epochs`` epochs with the released
  warm-up fraction (10/512 of the run, cosine over the run) and batch ``batch_size`` (SimSiam /
  BYOL: half of it x accumulation 2); embeddings are saved at ``saved_epochs`` so that the
  effect is measured as a function of how often each image was seen (one pass per epoch).
  Seen = its training images, unseen = test images of the same classes, novel = test images of
  the held-out classes. The held-out classes rotate with the seed (seed ``s`` holds out
  ``holdouts[s % len(holdouts)]``), so a class-dependent norm level cannot masquerade as a
  novel-class effect in the mean over seeds.
- ``cifar100`` (the paper's, ``paper`` profile): each method's CIFAR-10 base run with CIFAR-100
  test images saved as the novel set; the epochs are the run's own ``save_embeddings_epochs``.

Effects per seed (score = -norm, "small norm => unseen", positive class = the unseen set):
``AUROC(test vs train) - 0.5`` and ``AUROC(novel vs test) - 0.5``, each with its bootstrap
standard error over images. Interval over seeds: Student-t for ``holdout`` (the images rotate with
the seed, so image noise is inside the seed spread), :func:`embedding_norms.stats.combined_interval`
for ``cifar100`` (the same images in every seed). Checks at the last saved epoch; the effect at
every saved epoch is a table and a figure panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from embedding_norms.analysis import novelty_auroc
from embedding_norms.config import METHODS
from embedding_norms.plotting import METHOD_LABELS, plot_effect_by_epoch
from embedding_norms.report import ClaimCheck
from embedding_norms.runs import VECTORS, embedding_of
from embedding_norms.stats import combined_interval, seed_interval
from reproduce.artifact import Plan, RunSpec
from reproduce.experiments import base_run

PAPER_REF = "Section 5 (seen vs unseen, next to Figure 4)"
TITLE = "Training images get larger embedding norms than unseen and novel images"
CLAIMS = ("seen-unseen",)
VECTOR = "projector output z (option: predictor output p)"

DESIGNS = ("holdout", "cifar100")
#: comparison -> (seen split, unseen split)
COMPARISONS = {"test vs train": ("train", "test"), "novel vs test": ("test", "novel")}
SET_COLORS = {"train": "#1b9e77", "test": "#7570b3", "novel": "#d95f02"}
NUM_CLASSES = 10


@dataclass(frozen=True)
class Params:
    """``artifacts.fig_seen_vs_unseen`` of a profile (``n_train`` .. ``holdouts``: design ``holdout`` only)."""

    methods: tuple[str, ...] = ("simclr", "simsiam")
    design: str = "holdout"                         # paper: cifar100
    n_train: int = 500                              # class-stratified over the seen classes
    epochs: int = 120
    saved_epochs: tuple[int, ...] = (15, 30, 60, 120)
    batch_size: int = 128                           # images per optimizer step (SimSiam/BYOL: 64 x 2)
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

    def holdout(self, seed: int) -> tuple[int, ...]:
        """The classes held out for training seed ``seed``."""
        return tuple(self.holdouts[seed % len(self.holdouts)])


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
            "train": {"epochs": p.epochs, "eval_epochs": [p.epochs], "save_embeddings_epochs": sorted(p.saved_epochs),
                      "probe_size": p.n_train}}


def runs(plan: Plan, p: Params) -> dict[Key, RunSpec]:
    """One run per method and seed: the holdout design's run, or the base run with CIFAR-100 as novel set."""
    out = {}
    for m in p.methods:
        for s in plan.seeds:
            if p.design == "holdout":
                tag = f"seen-unseen/n={p.n_train}/holdout={'-'.join(map(str, p.holdout(s)))}"
                out[Key(m, s)] = base_run(plan, m, s, extra=_holdout_overrides(m, s, p), tag=tag)
            else:
                out[Key(m, s)] = base_run(plan, m, s, extra={"eval": {"novel": "cifar100"}}, tag="novel-cifar100")
    return out


def frames(runs: dict[Key, Any], p: Params) -> dict[str, pd.DataFrame]:
    """``""``: effect (AUROC - 0.5) per method, comparison and saved epoch with its interval over
    seeds; ``auroc``: per seed; ``norms``: norm summaries per split; ``_images``: per-image norms at
    each run's last saved epoch; ``_skipped``: runs without usable embeddings."""
    aurocs, norm_rows, images, skipped = [], [], [], []
    for key, run in runs.items():
        if not run.usable:
            continue                                   # recorded once by the builder
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
            bad = [s for s, n in norms.items() if n.size == 0 or not np.isfinite(n).all()]
            if bad:
                skipped.append({**key._asdict(), "epoch": epoch, "reason": f"empty or non-finite norms in {bad}"})
                continue
            for s, n in norms.items():
                norm_rows.append({**key._asdict(), "epoch": epoch, "split": s, "images": n.size,
                                  "mean_norm": float(n.mean()), "median_norm": float(np.median(n))})
                if epoch == epochs[-1]:
                    images.append(pd.DataFrame({**key._asdict(), "set": s, "norm": n}))
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
    return {"": pd.DataFrame(rows), "auroc": per_seed, "norms": pd.DataFrame(norm_rows),
            "_images": pd.concat(images, ignore_index=True) if images else pd.DataFrame(columns=["method", "seed", "set", "norm"]),
            "_skipped": pd.DataFrame(skipped)}


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


def checks(frames: dict[str, pd.DataFrame], p: Params) -> list[ClaimCheck]:
    """Per method and comparison at the design's last saved epoch: ``AUROC - 0.5`` per seed
    (claim: > 0); interval: :func:`_interval`."""
    a = frames["auroc"]
    out = []
    for m in p.methods:
        for comp in COMPARISONS:
            test = f"{METHOD_LABELS[m]}: small norm => unseen, {comp}"
            sub = a[(a.method == m) & (a.comparison == comp)] if len(a) else a
            if len(sub):  # the design's last epoch for every seed (never another epoch for a seed that lacks it)
                sub = sub[sub.epoch == max(p.saved_epochs if p.design == "holdout" else sub.epoch)].sort_values("seed")
            if not len(sub):
                out.append(ClaimCheck.from_effects("seen-unseen", test, "AUROC - 0.5", [], regime=_regime(p),
                                                   detail="runs missing or not finished"))
                continue
            iv = _interval(sub, p)
            detail = (f"epoch {sorted(set(sub.epoch.astype(int)))}, AUROC per seed {[round(v, 3) for v in sub.auroc]}, "
                      f"bootstrap SE {[round(v, 3) for v in sub.se]}, held out {sub.held_out.tolist()}, "
                      f"{int(sub.n_unseen.iloc[0])} unseen vs {int(sub.n_seen.iloc[0])} seen images")
            out.append(ClaimCheck.from_effects("seen-unseen", test, "AUROC - 0.5 (score = -norm, positive = unseen)",
                                               sub["effect"].tolist(), "> 0", _regime(p), detail, interval=iv))
    return out


def figures(frames: dict[str, pd.DataFrame], p: Params) -> dict[str, plt.Figure]:
    """Per method: top, ECDF of the norms at the last epoch (all seeds pooled); bottom, the effect
    (AUROC - 0.5) against the epoch with its interval over seeds."""
    table, images = frames[""], frames["_images"]
    methods = [m for m in p.methods if len(table) and (table.method == m).any()]
    if not methods:
        return {}
    fig, axes = plt.subplots(2, len(methods), figsize=(5.0 * len(methods), 7.2), squeeze=False)
    for j, m in enumerate(methods):
        d = images[images.method == m]
        if len(d):
            sns.ecdfplot(data=d, x="norm", hue="set", hue_order=list(SET_COLORS), palette=SET_COLORS, ax=axes[0, j])
        axes[0, j].set_title(f"{METHOD_LABELS[m]}: norms at the last epoch ({d.seed.nunique()} seeds pooled)",
                             fontsize="small")
        axes[0, j].set_xlabel(f"norm of {p.vector}")
        t = table[table.method == m]
        plot_effect_by_epoch(axes[1, j], t, "comparison", unit="AUROC - 0.5")
        axes[1, j].set_xlabel("epoch (= passes over each training image)")
        axes[1, j].legend(fontsize="x-small")
    fig.suptitle(f"Seen vs unseen ({_regime(p)}); small norm => unseen", fontsize="small")
    fig.tight_layout()
    return {"": fig}


def notes(frames: dict[str, pd.DataFrame], p: Params) -> list[str]:
    """The design, the rotation of the held-out classes, and how the interval is made."""
    if p.design == "holdout":
        out = [f"Design `holdout`: per seed, a model trained on {p.n_train} class-stratified CIFAR-10 images of the "
               f"classes not held out, {p.epochs} epochs (warm-up {p.epochs * 10 / 512:g} epochs = 10/512 of the run, "
               f"cosine over the run), {p.batch_size} images per optimizer step; embeddings at epochs "
               f"{list(p.saved_epochs)}. Novel = test images of the held-out classes. The held-out classes rotate with "
               f"the seed ({', '.join(str(list(p.holdout(s))) for s in range(len(p.holdouts)))} for seeds 0, 1, ...), "
               "so class-dependent norm levels do not confound the novel-class comparison in the mean over seeds."]
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
