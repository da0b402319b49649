"""Real-data artifacts (norm growth, weight decay, cut-init, GradScale, imbalance) on fabricated run
stores: known metrics / embeddings in, the claim verdicts they imply out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedding_norms.runs import RunStore
from reproduce import fig_imbalance_norms, fig_norm_growth, tab_cut_init, tab_weight_decay
from reproduce.common import OutputDirs, Plan, timed_build


@pytest.fixture
def plan(data_dir):
    return Plan("smoke", str(data_dir))


def fabricate(store: RunStore, spec, epochs, norms, knn=None, state="done"):
    """A finished run with the given per-epoch mean norms (10-90 % band = +-10 %) and kNN accuracies."""
    store.ensure(spec.cfg)
    norms = np.asarray(norms, float)
    frame = pd.DataFrame({"epoch": epochs, "step": [10 * e for e in epochs], "loss": np.nan, "lr": 0.1,
                          "emb_norm_mean": norms,
                          "emb_norm_q10": norms * 0.9, "emb_norm_q90": norms * 1.1,
                          "knn_acc": knn if knn is not None else np.nan})
    frame.to_csv(store.path(spec.cfg) / "metrics.csv", index=False)
    store.set_status(spec.cfg, state)


def checks(result, claim):
    return [c for c in result.checks if c.claim == claim]


def build(artifact, plan, store, tmp_path):
    res = timed_build(artifact, plan, store, OutputDirs(tmp_path / "out"))
    assert res.status == "built", (res.error, res.skipped)
    for f in res.figures + res.tables:
        assert (tmp_path / "out" / f).exists(), f
    return res


@pytest.mark.parametrize("wd_shrinks", [True, False])
def test_norm_growth_and_weight_decay_verdicts_follow_the_data(plan, tmp_path, wd_shrinks):
    store = RunStore(tmp_path / "runs")
    epochs = [0, 1, 2]
    for spec in fig_norm_growth.runs(plan):
        method, wd = spec.label.split("/wd=")
        wd = float(wd)
        final = 10.0 / (1 + 1e3 * wd) if wd_shrinks else 10.0 * (1 + 1e3 * wd)
        fabricate(store, spec, epochs, [1.0, (1 + final) / 2, final], [10.0, np.nan, 30.0])
    res = build(fig_norm_growth.ARTIFACT, plan, store, tmp_path)
    growth = checks(res, "norm-growth")
    assert len(growth) == 3 and all(c.holds for c in growth)
    simclr = [c for c in growth if c.test.startswith("SimCLR")][0]
    assert simclr.value == pytest.approx(10.0)  # final 10 / initial 1 at wd = 0
    wd = checks(res, "weight-decay")
    assert len(wd) == 2 and all(c.holds is wd_shrinks for c in wd)
    # SimSiam: norm(wd=0.05) / norm(0) = 1 / (1 + 50) or (1 + 50)
    ss = [c for c in wd if c.test.startswith("SimSiam")][0]
    assert ss.value == pytest.approx(1 / 51 if wd_shrinks else 51.0)

    res_t = build(tab_weight_decay.ARTIFACT, plan, store, tmp_path)
    rho = checks(res_t, "weight-decay")
    assert [c.value for c in rho] == pytest.approx([-1.0, -1.0] if wd_shrinks else [1.0, 1.0])
    table = pd.read_csv(tmp_path / "out" / "tables" / "tab_weight_decay.csv")
    assert set(table.epoch.dropna()) == {0, 2}  # only the evaluation epochs


def test_cut_init_first_epoch_gain_and_speedup(plan, tmp_path):
    store = RunStore(tmp_path / "runs")
    # c = 1 reaches 20 % at epoch 4; c = 3 already at epoch 1; c = 9 is worse throughout
    curves = {1.0: [10, 12, 15, 20], 3.0: [10, 19, 21, 22], 9.0: [10, 11, 12, 13]}
    epochs = [0, 1, 2, 4]
    for spec in tab_cut_init.runs(plan):
        c = float(spec.label.rsplit("c=", 1)[1])
        fabricate(store, spec, epochs, [1, 2, 3, 4], curves[c])
    res = build(tab_cut_init.ARTIFACT, plan, store, tmp_path)
    cut = checks(res, "cut-init")
    first = [x for x in cut if "first eval epoch" in x.test]
    curve = [x for x in cut if "learning curve" in x.test]
    assert len(first) == len(curve) == 2 * 3 * 2  # 2 constants x 3 methods x 2 datasets (CIFAR-100 stand-in)
    assert all(x.holds and x.value == pytest.approx(19 - 12) for x in first if "c=3" in x.test)
    assert all(x.holds is False and x.value == pytest.approx(11 - 12) for x in first if "c=9" in x.test)
    # mean over the evaluation epochs 1, 2, 4: c=3 (19+21+22)/3 vs c=1 (12+15+20)/3; c=9 (11+12+13)/3
    assert all(x.holds and x.value == pytest.approx(62 / 3 - 47 / 3) for x in curve if "c=3" in x.test)
    assert all(x.holds is False and x.value == pytest.approx(12 - 47 / 3) for x in curve if "c=9" in x.test)
    table = pd.read_csv(tmp_path / "out" / "tables" / "tab_cut_init.csv")
    row = table[(table.method == "SimCLR") & (table.c == 3.0) & (table.dataset == "cifar10")].iloc[0]
    # target = 0.9 x final accuracy of c = 1 = 18 %: c = 1 reaches it at epoch 4, c = 3 at epoch 1
    assert row.target_acc == pytest.approx(18.0)
    assert row.first_epoch_at_target == 1 and row.speedup_vs_c1 == pytest.approx(4.0)


@pytest.mark.parametrize("sign", [1, -1])
def test_imbalance_norms_rank_correlation(plan, tmp_path, sign):
    store = RunStore(tmp_path / "runs")
    rng = np.random.default_rng(0)
    sizes = [50, 33, 22, 14, 9, 6, 4, 3, 2, 1]
    for spec in fig_imbalance_norms.runs(plan):
        fabricate(store, spec, [0, 1], [1, 2])
        labels = np.repeat(np.arange(10), sizes)
        # class mean norm = 5 + sign * log(size): ranks follow class size exactly
        norms = (5 + sign * np.log(np.array(sizes, float)))[labels] + rng.normal(0, 1e-3, len(labels))
        emb = rng.normal(size=(len(labels), 4)).astype(np.float16)
        path = store.path(spec.cfg) / "embeddings"
        path.mkdir(exist_ok=True)
        np.savez(path / "epoch_0001.npz", **{"train/emb": emb, "train/emb_norm": norms.astype(np.float32),
                                              "train/labels": labels, "train/indices": np.arange(len(labels))})
    res = build(fig_imbalance_norms.ARTIFACT, plan, store, tmp_path)
    rho = checks(res, "imbalance-norms")
    assert len(rho) == 2 and all(c.value == pytest.approx(float(sign)) and c.holds is (sign > 0) for c in rho)
