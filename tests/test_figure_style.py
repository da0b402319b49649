"""One visual language (issue 22): every real-data artifact's figures draw each method only in the
colour that ``embedding_norms.plotting.METHOD_COLORS`` gives it (anything else is a neutral grey),
epoch axes carry integer ticks, and no tick label is in the ``1.65×10¹`` / ``10^1`` power form.

The figures are built from hand-made frames (the columns each ``figures()`` reads, random values):
no run, no data. The colours are read from the matplotlib Figure objects."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from embedding_norms import plotting  # noqa: E402
from embedding_norms.plotting import METHOD_COLORS  # noqa: E402
from reproduce import (fig4_norm_confidence, fig_imbalance_norms, fig_norm_growth, fig_seen_vs_unseen,  # noqa: E402
                       tab_cut_init, tab_gradscale, tab_weight_decay)
from reproduce.experiments import vectors_of  # noqa: E402

RNG = np.random.default_rng(0)
EPOCHS = (0, 1, 2, 4)


def grid(**levels) -> pd.DataFrame:
    """Every combination of the given column values (one row each)."""
    return pd.DataFrame(list(itertools.product(*levels.values())), columns=list(levels))


def with_effects(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus a random effect with an interval around it."""
    e = RNG.normal(size=len(frame))
    return frame.assign(effect=e, ci_low=e - 0.5, ci_high=e + 0.5)


def by_vector(methods, **levels) -> pd.DataFrame:
    """``grid`` over ``methods`` x their vectors (z; p for SimSiam/BYOL) x ``levels``."""
    return pd.concat([grid(method=[m], vector=list(vectors_of(m)), **levels) for m in methods], ignore_index=True)


def frames_norm_growth(p):
    long = by_vector(p.methods, seed=[0, 1, 2], epoch=EPOCHS)
    long = long.assign(norm_mean=RNG.uniform(1, 20, len(long)), knn_acc=RNG.uniform(10, 40, len(long)),
                       gamma_norm=np.where(long.method == "simclr", np.nan, 16.0))
    return {"": long, "growth": with_effects(by_vector(p.methods, epoch=EPOCHS[1:]))}


def frames_weight_decay(p):
    long = pd.concat([by_vector([m], weight_decay=list(p.sweep(m)), seed=[0, 1], epoch=EPOCHS)
                      for m in ("simclr", "simsiam")], ignore_index=True)
    long = long.assign(mean_norm=RNG.uniform(1, 20, len(long)), knn_acc=RNG.uniform(10, 40, len(long)))
    return {"": long, "effect": with_effects(by_vector(["simclr", "simsiam"], epoch=EPOCHS))}


def frames_cut_init(p):
    arms = pd.concat([grid(regime=[r], dataset=list(p.datasets), method=[m], scope=list(p.scopes_of(r, m)),
                           c=list(p.constants)) for r in p.regimes for m in p.methods], ignore_index=True)
    long = arms.merge(grid(seed=[0, 1], epoch=EPOCHS), how="cross")
    return {"": long.assign(knn_acc=RNG.uniform(10, 40, len(long))),
            "effect": with_effects(arms[arms.c != 1.0].merge(grid(epoch=EPOCHS), how="cross"))}


def frames_gradscale(p):
    arms = pd.concat([grid(dataset=list(p.datasets), method=[m], data=list(p.data),
                           arm=[tab_gradscale.arm(st, pw) for st in p.settings_of(m) for pw in (0.0, *p.powers)])
                      for m in p.methods], ignore_index=True)
    long = arms.merge(grid(seed=[0, 1], epoch=EPOCHS), how="cross")
    comps = pd.concat([grid(dataset=list(p.datasets), method=[m], data=list(p.data),
                            comparison=[c[0] for c in tab_gradscale.comparisons(p, m)], epoch=EPOCHS)
                       for m in p.methods], ignore_index=True)
    return {"": long.assign(knn_acc=RNG.uniform(10, 40, len(long))), "effect": with_effects(comps),
            "arms": arms.assign(knn_epoch0=15.0)}


def frames_imbalance(p):
    t = by_vector(p.methods, seed=[0, 1, 2], train_images=[9, 13, 20, 30, 46])
    t = t.assign(growth=RNG.normal(size=len(t)), relative_norm=RNG.uniform(0.9, 1.1, len(t)))
    return {"": t, "growth_by_epoch": with_effects(by_vector(p.methods, epoch=EPOCHS[1:]))}


def frames_seen(p):
    comps = list(fig_seen_vs_unseen.COMPARISONS)
    images = grid(method=list(p.methods), seed=[0, 1], set=["train", "test", "novel"], image=range(50))
    paired = grid(method=list(p.methods), comparison=list(fig_seen_vs_unseen.NOVEL), epoch=list(p.saved_epochs))
    return {"": with_effects(grid(method=list(p.methods), comparison=comps, epoch=list(p.saved_epochs))),
            "_images": images.assign(norm=RNG.uniform(5, 30, len(images))), "paired_by_epoch": with_effects(paired)}


def frames_fig4(p):
    rows = []
    for panel, ds, m, seed, b in itertools.product(fig4_norm_confidence.PANELS, p.datasets, p.methods, (0, 1),
                                                   range(p.n_buckets)):
        views = ["test"] if panel == "entropy" else p.views(ds)
        for view in views:
            for variant in (p.knn_variants if panel == "knn" else ("-",)):
                lo = b / p.n_buckets
                rows.append({"panel": panel, "variant": variant, "dataset": ds, "method": m, "view": view,
                             "seed": seed, "bucket": b, "lo": lo, "hi": lo + 1 / p.n_buckets,
                             "mid": lo + 0.5 / p.n_buckets, "count": 40 - b, "drawn": b < 15 or seed == 0,
                             "value": RNG.uniform(10, 90)})
    bt = pd.DataFrame(rows)
    be = with_effects(bt[bt.bucket == 0].drop(columns=["bucket", "seed"]).drop_duplicates()
                      .merge(grid(epoch=[0, 2]), how="cross"))
    return {"buckets": bt, "by_epoch": be}


CASES = {
    "fig_norm_growth": (fig_norm_growth, frames_norm_growth),
    "tab_weight_decay": (tab_weight_decay, frames_weight_decay),
    "tab_cut_init": (tab_cut_init, frames_cut_init),
    "tab_gradscale": (tab_gradscale, frames_gradscale),
    "fig_imbalance_norms": (fig_imbalance_norms, frames_imbalance),
    "fig_seen_vs_unseen": (fig_seen_vs_unseen, frames_seen),
    "fig4_norm_confidence": (fig4_norm_confidence, frames_fig4),
}


def drawn_colours(fig: plt.Figure) -> list[tuple[float, float, float]]:
    """RGB of every line, marker, band, scatter point and bar drawn in the figure's axes."""
    out = []
    for ax in fig.axes:
        for line in ax.lines:
            out += [to_rgb(line.get_color()), to_rgb(line.get_markerfacecolor()), to_rgb(line.get_markeredgecolor())]
        for coll in ax.collections:
            out += [tuple(c[:3]) for c in np.atleast_2d(coll.get_facecolor()) if len(c) and c[3] > 0]
            out += [tuple(c[:3]) for c in np.atleast_2d(coll.get_edgecolor()) if len(c) and c[3] > 0]
        out += [to_rgb(patch.get_facecolor()) for patch in ax.patches]
    return out


def neutral(rgb) -> bool:
    """A grey (black and white included): equal red, green and blue."""
    return max(rgb) - min(rgb) < 1e-6


def methods_in(frames: dict) -> set[str]:
    return {m for f in frames.values() if isinstance(f, pd.DataFrame) and "method" in f for m in f.method.unique()}


@pytest.fixture(params=sorted(CASES))
def built(request):
    module, make = CASES[request.param]
    p = module.Params()
    frames = make(p)
    figs = module.figures(frames, p)
    yield request.param, frames, figs
    for f in figs.values():
        plt.close(f)


def test_method_lines_use_only_the_method_palette(built):
    name, frames, figs = built
    assert "" in figs, f"{name}: no main figure from the hand-made frames"
    palette = {m: to_rgb(c) for m, c in METHOD_COLORS.items()}
    for suffix, fig in figs.items():
        colours = set(drawn_colours(fig))
        foreign = {c for c in colours if not neutral(c) and c not in set(palette.values())}
        assert not foreign, f"{name}{'_' + suffix if suffix else ''}: colours outside the method palette {foreign}"
    main = set(drawn_colours(figs[""]))
    for m in methods_in(frames):
        assert palette[m] in main, f"{name}: {m} is not drawn in its colour {METHOD_COLORS[m]}"


def test_epoch_ticks_are_integers_and_tick_labels_plain(built):
    name, _, figs = built
    for suffix, fig in figs.items():
        fig.canvas.draw()
        for ax in fig.axes:
            labels = [t.get_text() for axis in (ax.xaxis, ax.yaxis) for minor in (False, True)
                      for t in axis.get_ticklabels(minor=minor)]
            bad = [t for t in labels if "×" in t or "^" in t or "times" in t]
            assert not bad, f"{name}{'_' + suffix if suffix else ''}: tick labels in power form {bad}"
            if ax.get_xlabel().startswith("epoch"):
                lo, hi = sorted(ax.get_xlim())
                ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
                assert ticks and all(float(t).is_integer() for t in ticks), (name, suffix, ticks)


def test_effect_lines_take_their_method_colour_and_vector_style():
    """z and p of one method: the method's colour, z solid with circles and p dashed with squares; a
    table without a method column gets neutral greys."""
    table = by_vector(["simclr", "simsiam"], epoch=[1, 2]).assign(comparison=lambda d: d.method + " " + d.vector)
    styles = plotting.effect_styles(table, "comparison")
    assert styles["simsiam z"]["color"] == styles["simsiam p"]["color"] == METHOD_COLORS["simsiam"]
    assert (styles["simsiam z"]["linestyle"], styles["simsiam z"]["marker"]) == ("-", "o")
    assert (styles["simsiam p"]["linestyle"], styles["simsiam p"]["marker"]) == ("--", "s")
    plain = plotting.effect_styles(pd.DataFrame({"comparison": ["a", "b"]}), "comparison")
    assert all(neutral(to_rgb(s["color"])) for s in plain.values()) and plain["a"]["linestyle"] != plain["b"]["linestyle"]
