"""One figure style for the whole repository (one colour per method, line style and marker per
variant, integer epoch ticks, plain tick labels), and atomic saving of figures and tables."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (also on cluster nodes)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import LogFormatter, MaxNLocator  # noqa: E402

from .io import atomic_path  # noqa: E402

#: Colours of the methods, used by every figure for every line, marker, band and bar of a method
#: (Okabe-Ito colours: distinguishable with the common colour-vision deficiencies).
METHOD_COLORS = {"simclr": "#0072B2", "simsiam": "#D55E00", "byol": "#009E73"}
METHOD_LABELS = {"simclr": "SimCLR", "simsiam": "SimSiam", "byol": "BYOL"}
#: Colour of what belongs to no method: references (untrained level, zero line), seed-only legend entries.
NEUTRAL = "0.45"
#: (line style, marker) of the 1st, 2nd, ... variant (arm, comparison) drawn in one method's colour.
VARIANT_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (1, 3)), "v"), ((0, (5, 1)), "P"))
#: (line style, marker) of a vector: the projector output z solid, the predictor output p dashed.
VECTOR_STYLES = {"z": ("-", "o"), "p": ("--", "s"), "h": (":", "^")}


def method_style(method: str, variant: int = 0, vector: str | None = None) -> dict:
    """Keyword arguments of ``Axes.plot`` for a line of ``method``: its colour, and the line style and
    marker of ``vector`` (when given) or else of the ``variant``-th variant (cycling).

    Raises:
        KeyError: an unknown method.
    """
    ls, marker = VECTOR_STYLES[vector] if vector in VECTOR_STYLES else VARIANT_STYLES[variant % len(VARIANT_STYLES)]
    return {"color": METHOD_COLORS[method], "linestyle": ls, "marker": marker}


def epoch_axis(ax: plt.Axes, label: str = "epoch") -> None:
    """Label the x axis of ``ax`` as epochs, with integer ticks only (no 0.5, 1.5, ...)."""
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


class _PlainLogFormatter(LogFormatter):
    """Tick labels of a log axis as plain numbers (``16.5``, ``0.1``, ``1e-06``), never ``1.65×10¹``;
    which ticks get a label is matplotlib's choice (minor ticks only on short ranges)."""

    def __call__(self, x, pos=None):  # noqa: D102
        return f"{x:g}" if super().__call__(x, pos) else ""


def plain_log_ticks(ax: plt.Axes, axis: str = "y") -> None:
    """Plain tick labels on the log-scaled ``axis`` (``"x"`` or ``"y"``) of ``ax``."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    a.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def wrap(text: str, width: int = 34) -> str:
    """``text`` broken into lines of at most ``width`` characters (axis labels that fit their axes)."""
    return textwrap.fill(text, width)


def seed_lines_entry(ax: plt.Axes, **legend_kw) -> None:
    """The legend of ``ax`` plus one entry for all per-seed lines ("thin: one seed each") instead of
    one entry per seed (the seeds share a colour)."""
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color=NEUTRAL, lw=0.8, alpha=0.6))
    labels.append("thin: one seed each")
    ax.legend(handles, labels, **legend_kw)


def plot_seeds_and_mean(ax: plt.Axes, frame: pd.DataFrame, x: str, y: str, label: str, style: dict,
                        seed: str = "seed") -> None:
    """Per-seed lines of ``y`` against ``x`` (thin, no legend entry) under their mean over seeds
    (bold, labelled ``label``); ``style``: from :func:`method_style`. Rows: one per seed and ``x``."""
    for _, g in frame.groupby(seed):
        g = g.sort_values(x)
        ax.plot(g[x], g[y], color=style["color"], linestyle=style.get("linestyle", "-"), lw=0.8, alpha=0.35)
    mean = frame.groupby(x)[y].mean()
    ax.plot(mean.index, mean.values, ms=4, lw=2, label=label, **style)


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


def effect_styles(table: pd.DataFrame, hue: str) -> dict:
    """``{hue value: plot style}`` of :func:`plot_effect_by_epoch`: each line in its method's colour
    (column ``method``), told apart within a method by the style of its vector (column ``vector``,
    when each line has one and they differ) or else by its order (:data:`VARIANT_STYLES`). Without a
    ``method`` column the lines get neutral greys with variant styles."""
    out = {}
    for m, gm in (table.groupby("method", sort=False) if "method" in table else [(None, table)]):
        names = list(dict.fromkeys(gm[hue]))
        vecs = [set(gm[gm[hue] == n].vector) for n in names] if "vector" in gm else []
        by_vector = bool(vecs) and all(len(v) == 1 for v in vecs) and len({next(iter(v)) for v in vecs}) == len(names)
        for i, n in enumerate(names):
            vec = next(iter(vecs[i])) if by_vector else None
            out[n] = method_style(m, i, vec) if m in METHOD_COLORS else {
                "color": NEUTRAL, "linestyle": VARIANT_STYLES[i % 6][0], "marker": VARIANT_STYLES[i % 6][1]}
    return out


def plot_effect_by_epoch(ax: plt.Axes, table: pd.DataFrame, hue: str, colors=None, unit: str = "points",
                         styles: dict | None = None) -> None:
    """Draw a mean effect over seeds against the evaluation epoch, with its 95 % interval as a band.

    Args:
        ax: the axes.
        table: rows with ``epoch``, ``effect``, ``ci_low``, ``ci_high`` and the ``hue`` column
            (one line per hue value), as made by ``reproduce.experiments.effect_table``; with a
            ``method`` column each line is drawn in its method's colour (:func:`effect_styles`).
        hue: column naming the line (e.g. ``"comparison"``).
        colors: optional ``{hue value: colour}`` overriding the colour of :func:`effect_styles`.
        unit: unit of the effect, for the y label (wrapped to fit the axes).
        styles: optional ``{hue value: plot keyword arguments}`` replacing :func:`effect_styles`.
    """
    styles = styles or effect_styles(table, hue)
    for name, g in table.groupby(hue, sort=False):
        g = g.sort_values("epoch")
        st = dict(styles.get(name, {"color": NEUTRAL}))
        st["color"] = (colors or {}).get(name, st["color"])
        ax.plot(g["epoch"], g["effect"], ms=3, label=str(name), **st)
        ax.fill_between(g["epoch"], g["ci_low"].astype(float), g["ci_high"].astype(float), color=st["color"],
                        alpha=0.15, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    epoch_axis(ax)
    ax.set_ylabel(wrap(unit) + "\n(mean over seeds, 95 % CI)")


def effect_figure(table: pd.DataFrame, unit: str, title: str) -> plt.Figure:
    """A figure of an effect against the epoch with its interval over seeds, one line per method and
    vector (``table``: rows of ``reproduce.experiments.effect_table`` with ``method`` and ``vector``):
    the method's colour, z solid and p dashed."""
    fig, ax = plt.subplots(figsize=(5.8, 4.0))
    plot_effect_by_epoch(ax, table.assign(comparison=table.method.map(METHOD_LABELS) + " " + table.vector),
                         "comparison", unit=unit)
    ax.set_title(wrap(title, 60), fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def class_palette(n: int) -> list:
    """``n`` blues from light (rare class) to dark (frequent class), for the simulations' classes."""
    return sns.color_palette("Blues", n_colors=n + 2)[2:]
