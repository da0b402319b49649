"""Run health (issue 14 section 1): collapsed and exploded runs end as ``collapsed`` / ``diverged``
with the epoch and the measured value; the health columns are in metrics.csv; saved embeddings
never overflow float16."""

import math

import numpy as np
import pytest
import torch

from embedding_norms.health import (COLLAPSE_STD_FRACTION, EXPLODING_NORM, FROZEN_LOSS_EPOCHS, collapse, divergence,
                                    std_normalized)
from embedding_norms.integrity import float16_or_32
from embedding_norms.runs import RunStore
from embedding_norms.train_cli import main

# the commands, on generated stand-in images of a smaller training set (seconds, not minutes)
FAST = ["data.standin=true", "data.train_size=128", "data.test_size=50", "train.probe_size=50",
        "model.width=4", "model.projector_hidden_dim=16", "model.projector_out_dim=16"]


def _run(tmp_path, method, *sets, epochs=3):
    store = RunStore(tmp_path / "runs")
    args = FAST + [f"train.epochs={epochs}", f"train.eval_epochs=[0,{epochs}]",
                   f"train.save_embeddings_epochs=[{epochs}]", *sets]
    if method != "simclr":
        args.append("model.predictor_hidden_dim=8")
    rc = main(["--method", method, "--profile", "smoke", "--runs", str(store.root), "--no-progress", "--set", *args])
    (run,) = [d for d in store.root.iterdir() if d.is_dir()]
    from embedding_norms.runs import load_config
    cfg = load_config(run)
    return rc, store, cfg


# ----------------------------------------------------------------- measures, by hand
def test_std_normalized_closed_forms():
    d = 8
    # +e_i and -e_i for every i: each dimension holds +1, -1 once and 0 (2d - 2) times
    x = torch.cat([torch.eye(d), -torch.eye(d)]) * 3.0  # scale is irrelevant after normalisation
    assert std_normalized(x) == pytest.approx(math.sqrt(2 / (2 * d - 1)))
    assert std_normalized(torch.ones(10, d) * 5) == 0.0  # complete collapse
    assert math.isnan(std_normalized(torch.tensor([[1.0, float("inf")], [1.0, 2.0]])))


def _rows(losses, stds, ref=0.25, knn=None):
    return [{"epoch": e, "loss": l, "z_std_normalized": s, "std_normalized_ref": ref,
             "knn_acc": (knn if e == len(losses) - 1 and knn is not None else float("nan")), "knn_at_chance": 1.0}
            for e, (l, s) in enumerate(zip(losses, stds))]


def test_collapse_rules_by_hand():
    limit = COLLAPSE_STD_FRACTION * 0.25
    healthy = _rows([math.nan, 3.0, 2.9, 2.8, 2.7], [0.02, 0.01, 0.02, 0.03, 0.04])
    assert collapse(healthy, has_predictor=False) is None
    # std below the limit from epoch 2 to the end: collapsed since 2, the last value is reported
    v = collapse(_rows([math.nan, 3.0, 2.9, 2.8, 2.7], [0.02, 0.01, limit / 2, limit / 3, limit / 4], knn=10.0), False)
    assert (v.state, v.epoch, v.measure) == ("collapsed", 2, "z_std_normalized")
    assert v.value == pytest.approx(limit / 4) and "kNN 10.0 % is at chance" in v.reason
    # a dip that recovered is not collapse
    assert collapse(_rows([math.nan, 3.0, 2.9, 2.8], [0.02, limit / 2, 0.01, 0.02]), False) is None
    # frozen loss over FROZEN_LOSS_EPOCHS epochs, std healthy
    losses = [math.nan, 3.0] + [math.log(31)] * FROZEN_LOSS_EPOCHS
    v = collapse(_rows(losses, [0.02] * len(losses)), False)
    assert (v.state, v.measure, v.epoch) == ("collapsed", "loss_spread", 2)
    losses[-1] += 1e-3  # a change of 3e-4 relative is not frozen
    assert collapse(_rows(losses, [0.02] * len(losses)), False) is None


def test_divergence_rules_by_hand():
    row = {"epoch": 3, "nonfinite": 0, "p_norm_mean": 1.0, "z_norm_mean": 1.0, "h_norm_mean": 10.0}
    assert divergence(row) is None
    v = divergence({**row, "h_norm_mean": EXPLODING_NORM * 2})
    assert (v.state, v.epoch, v.measure, v.value) == ("diverged", 3, "h_norm_mean", EXPLODING_NORM * 2)
    assert divergence({**row, "z_norm_mean": float("inf")}).measure == "z_norm_mean"
    assert divergence({**row, "nonfinite": 4}).value == 4


def test_embeddings_saved_as_float32_when_float16_overflows():
    small = np.array([[1.5, -2.0]], np.float32)
    assert float16_or_32(small).dtype == np.float16
    big = np.array([[7e4, 1.0]], np.float32)  # float16 ends at 65504
    out = float16_or_32(big)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    with pytest.raises(ValueError, match="not finite"):
        float16_or_32(np.array([[np.nan, 1.0]], np.float32))


# ----------------------------------------------------------------- the runs
def test_cut_constant_1000_ends_collapsed(tmp_path, capsys):
    rc, store, cfg = _run(tmp_path, "simclr", "norm.cut_constant=1000")
    st = store.status(cfg)
    assert rc == 1 and st.state == "collapsed" and st.finished
    assert st.health["epoch"] >= 1 and st.health["value"] < COLLAPSE_STD_FRACTION / 4  # d = 16
    m = store.metrics(cfg)
    assert list(m.epoch) == [0, 1, 2, 3]  # the health record is kept for every epoch
    for col in ("z_std_normalized", "std_normalized_ref", "nonfinite", "knn_at_chance"):
        assert col in m.columns
    assert m.std_normalized_ref.iloc[0] == pytest.approx(1 / 4)
    assert "collapsed" in capsys.readouterr().out


@pytest.mark.parametrize("setting", ["method.temperature=1e-9", "optim.lr=100"])
def test_exploding_runs_end_diverged(tmp_path, setting):
    rc, store, cfg = _run(tmp_path, "simclr", setting)
    st = store.status(cfg)
    assert rc == 1 and st.state == "diverged"
    assert st.health["epoch"] == 1 and "exploding" in st.reason
    assert not list((store.path(cfg) / "embeddings").glob("*.npz"))  # nothing non-finite was saved
    assert store.verify(cfg) == []  # what it recorded is intact


def test_simsiam_weight_decay_collapses_with_p_column(tmp_path):
    rc, store, cfg = _run(tmp_path, "simsiam", "optim.weight_decay=0.5", epochs=2)
    st = store.status(cfg)
    m = store.metrics(cfg)
    assert "p_std_normalized" in m.columns and "z_std_normalized" in m.columns
    assert st.state == "collapsed" and st.health["measure"] == "p_std_normalized"
    assert m.p_std_normalized.iloc[-1] < COLLAPSE_STD_FRACTION * m.std_normalized_ref.iloc[-1]
