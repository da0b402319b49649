"""One figure style for the whole repository, and atomic saving of figures and tables."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (also on cluster nodes)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402

#: Colours of the methods, used by every figure.
METHOD_COLORS = {"simclr": "#1f77b4", "simsiam": "#d62728", "byol": "#2ca02c"}
METHOD_LABELS = {"simclr": "SimCLR", "simsiam": "SimSiam", "byol": "BYOL"}


def setup_style() -> None:
    """Seaborn 'whitegrid' paper style with readable fonts; call before making a figure."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 160, "savefig.bbox": "tight",
                         "axes.titlesize": "medium", "legend.fontsize": "small"})


def legend_or_note(ax: plt.Axes, note: str = "no finished run\n(see REPORT.md)", **legend_kw) -> None:
    """Draw the legend of ``ax``, or, when nothing labelled was plotted (its runs failed or were
    skipped), a centred note instead of an empty legend."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**legend_kw)
    else:
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color="grey")


def save_figure(fig: plt.Figure, stem: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` atomically and close it.

    Returns:
        the two paths written.
    """
    stem = Path(stem)
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext)
        out.append(path)
    plt.close(fig)
    return out


def save_table(frame: pd.DataFrame, stem: str | os.PathLike, float_format: str = "{:.4g}") -> list[Path]:
    """Save a table as ``<stem>.csv`` (full precision), ``.md`` and ``.tex`` (rounded), atomically.

    Returns:
        the three paths written.
    """
    stem = Path(stem)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    with atomic_path(paths[0]) as tmp:
        frame.to_csv(tmp, index=False)
    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(shown.to_markdown(index=False) + "\n")
    with atomic_path(paths[2]) as tmp:
        tmp.write_text(shown.to_latex(index=False, escape=True))
    return paths


def plot_effect_by_epoch(ax: plt.Axes, table: pd.DataFrame, hue: str, colors=None, unit: str = "points") -> None:
    """Draw a mean effect over seeds against the evaluation epoch, with its 95 % interval as a band.

    Args:
        ax: the axes.
        table: rows with ``epoch``, ``effect``, ``ci_low``, ``ci_high`` and the ``hue`` column
            (one line per hue value), as made by ``reproduce.experiments.effect_table``.
        hue: column naming the line (e.g. ``"comparison"``).
        colors: optional ``{hue value: colour}``.
        unit: unit of the effect, for the y label.
    """
    for i, (name, g) in enumerate(table.groupby(hue, sort=False)):
        g = g.sort_values("epoch")
        color = (colors or {}).get(name, f"C{i}")
        ax.plot(g["epoch"], g["effect"], "o-", ms=3, color=color, label=str(name))
        ax.fill_between(g["epoch"], g["ci_low"].astype(float), g["ci_high"].astype(float), color=color, alpha=0.18, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"effect [{unit}] (mean, 95 % CI)")


def effect_figure(table: pd.DataFrame, unit: str, title: str) -> plt.Figure:
    """A figure of an effect against the epoch with its interval over seeds, one line per method and
    vector (``table``: rows of ``reproduce.experiments.effect_table`` with ``method`` and ``vector``)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    plot_effect_by_epoch(ax, table.assign(comparison=table.method.map(METHOD_LABELS) + " " + table.vector),
                         "comparison", unit=unit)
    ax.set_title(title, fontsize="small")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def class_palette(n: int) -> list:
    """``n`` blues from light (rare class) to dark (frequent class), for the simulations' classes."""
    return sns.color_palette("Blues", n_colors=n + 2)[2:]
