"""bf16 vs fp32 on what the paper is about: per-epoch embedding-norm and kNN curves over seeds.

Reads every finished run of a run store, groups them by (method, precision, seed) (runs of one
method must differ only in ``train.seed`` and ``train.precision``), and writes

* ``<out>.png``/``.pdf``: mean +- seed SD per precision of the mean projector-output norm ``z``,
  the mean loss-embedding norm (SimSiam: predictor output ``p``) and the kNN accuracy, per epoch;
* ``<out>.csv``/``.md``/``.tex``: per method, metric and epoch the fp32 and bf16 means, the pooled
  seed SD and whether the difference passes the rule;
* ``<out>_speed.csv``/``.md``: per-run training seconds (from ``status.json``).

Rule (decided before looking at the runs): bf16 is adopted only if at every compared epoch
(norms: every epoch; kNN: every evaluation epoch) ``|mean_bf16 - mean_fp32| <= 2 s``, where
``s = sqrt((sd_fp32^2 + sd_bf16^2) / 2)`` is the pooled seed-to-seed SD (ddof 1) -- i.e. the
precision moves the curves by less than two typical seed-to-seed deviations.

    python benchmarks/precision_check.py --runs /tmp/speed/runs [--out benchmarks/precision_check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from embedding_norms.plotting import METHOD_LABELS, save_figure, save_table, setup_style
from embedding_norms.runs import load_config

METRICS = {"z_norm_mean": "mean norm of z (projector)", "emb_norm_mean": "mean norm of the loss embedding",
           "knn_acc": "kNN accuracy (%)"}
#: Allowed difference of the precision means, in pooled seed SDs.
SD_FACTOR = 2.0


def collect(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-epoch metrics and per-run seconds of every finished run under ``root``.

    Returns:
        (curves with columns method, precision, seed, epoch + ``METRICS``; runs with method,
        precision, seed, train_seconds, mean_epoch_seconds).

    Raises:
        ValueError: no finished run, or runs of one method that differ in more than seed and precision.
    """
    curves, runs, shapes = [], [], {}
    for d in sorted(p for p in Path(root).iterdir() if (p / "status.json").exists()):
        status = json.loads((d / "status.json").read_text())
        if status.get("state") != "done":
            continue
        cfg = load_config(d)
        shape = cfg.replace({"train": {"seed": 0, "precision": "fp32"}}).hash()
        if shapes.setdefault(cfg.method.name, shape) != shape:
            raise ValueError(f"{d}: a {cfg.method.name} run that differs from the others in more than "
                             f"train.seed and train.precision; use a run store with only the comparison's runs")
        key = dict(method=cfg.method.name, precision=cfg.train.precision, seed=cfg.train.seed)
        m = pd.read_csv(d / "metrics.csv")
        curves.append(m[["epoch", *METRICS]].assign(**key))
        runs.append(dict(key, train_seconds=status.get("train_seconds"),
                         mean_epoch_seconds=float(m.loc[m.epoch > 0, "epoch_seconds"].mean())))
    if not runs:
        raise ValueError(f"{root}: no finished run")
    return pd.concat(curves, ignore_index=True), pd.DataFrame(runs)


def compare(curves: pd.DataFrame, factor: float = SD_FACTOR) -> pd.DataFrame:
    """The rule of the module docstring, per method, metric and epoch (NaN kNN epochs dropped).

    Returns:
        columns method, metric, epoch, n_fp32, n_bf16, mean_fp32, mean_bf16, diff, pooled_sd,
        ``diff_in_sd`` (|diff| / pooled SD) and ``within`` (``|diff| <= factor x pooled SD``).
    """
    long = curves.melt(id_vars=["method", "precision", "seed", "epoch"], value_vars=list(METRICS),
                       var_name="metric").dropna(subset=["value"])
    g = long.groupby(["method", "metric", "epoch", "precision"])["value"].agg(["mean", "std", "count"]).unstack("precision")
    out = pd.DataFrame({"n_fp32": g[("count", "fp32")], "n_bf16": g[("count", "bf16")],
                        "mean_fp32": g[("mean", "fp32")], "mean_bf16": g[("mean", "bf16")]})
    out["diff"] = out.mean_bf16 - out.mean_fp32
    out["pooled_sd"] = np.sqrt((g[("std", "fp32")] ** 2 + g[("std", "bf16")] ** 2) / 2)
    out["diff_in_sd"] = out["diff"].abs() / out.pooled_sd
    out["within"] = out["diff"].abs() <= factor * out.pooled_sd
    return out.reset_index()


def paired_diffs(curves: pd.DataFrame, method: str, metric: str, epoch: int) -> list[float]:
    """``bf16 - fp32`` of ``metric`` at ``epoch`` for each seed run in both precisions (same seed =
    same initialisation, data order and augmentations)."""
    sub = curves[(curves.method == method) & (curves.epoch == epoch)].pivot(index="seed", columns="precision", values=metric)
    return list((sub["bf16"] - sub["fp32"]).dropna()) if {"bf16", "fp32"} <= set(sub.columns) else []


def plot(curves: pd.DataFrame, stem: Path) -> list[Path]:
    """Mean +- seed SD per precision, one row per method, one column per metric."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    setup_style()
    methods = sorted(curves.method.unique())
    fig, axes = plt.subplots(len(methods), len(METRICS), figsize=(4 * len(METRICS), 3 * len(methods)), squeeze=False)
    for i, method in enumerate(methods):
        sub = curves[curves.method == method]
        for j, (metric, label) in enumerate(METRICS.items()):
            ax = axes[i, j]
            if metric == "emb_norm_mean" and method == "simclr":
                ax.text(0.5, 0.5, "SimCLR: the loss embedding is z", transform=ax.transAxes, ha="center", color="grey")
                ax.set_axis_off()
                continue
            sns.lineplot(data=sub.dropna(subset=[metric]), x="epoch", y=metric, hue="precision",
                         hue_order=["fp32", "bf16"], errorbar="sd", marker="o", ax=ax)
            ax.set(title=f"{METHOD_LABELS.get(method, method)}: {label}", ylabel=label if j == 0 else label)
    fig.suptitle("quick profile, bf16 autocast vs fp32: mean +- seed SD", y=1.01)
    fig.tight_layout()
    return save_figure(fig, stem)


def main(argv: Optional[list[str]] = None) -> int:
    """Command line: collect, compare, plot, write the tables; exit 0 when bf16 passes, 1 otherwise."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True, help="run store with the comparison's runs only")
    p.add_argument("--out", default=str(Path(__file__).with_name("precision_check")), help="output stem")
    args = p.parse_args(argv)
    curves, runs = collect(Path(args.runs))
    table = compare(curves)
    stem = Path(args.out)
    plot(curves, stem)
    save_table(table, stem)
    speed = runs.sort_values(["method", "seed", "precision"])
    save_table(speed, stem.with_name(stem.name + "_speed"), float_format="{:.1f}")
    scored = table.dropna(subset=["diff_in_sd"])
    worst = scored.loc[scored.groupby(["method", "metric"])["diff_in_sd"].idxmax()]
    print(worst[["method", "metric", "epoch", "mean_fp32", "mean_bf16", "diff", "pooled_sd", "diff_in_sd", "within"]]
          .to_string(index=False))
    print(speed.groupby(["method", "precision"])[["train_seconds", "mean_epoch_seconds"]].median().to_string())
    for method, sub in table[table.epoch == table.epoch.max()].groupby("method"):
        print(f"{method}: final-epoch bf16 - fp32 per seed (paired by seed): " + ", ".join(
            f"{metric} {' '.join(f'{d:+.2f}' for d in paired_diffs(curves, method, metric, sub.epoch.iloc[0]))}"
            for metric in METRICS))
    ok = bool(table.within.all())
    print(f"bf16 {'passes' if ok else 'fails'} the rule |bf16 - fp32| <= {SD_FACTOR:g} x pooled seed SD at every "
          f"compared epoch ({int(table.within.sum())}/{len(table)} comparisons within)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
