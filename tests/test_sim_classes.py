"""Tests of simulations (b)/(c) (embedding_norms.sim_classes) against hand-computed values and the
released code's behaviour (issue 12 items 5 and 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedding_norms import sim_classes as sc


def test_knn_distance_by_hand_both_metrics():
    deg = np.deg2rad([0.0, 10.0, 30.0, 100.0])
    pts = np.stack([np.cos(deg), np.sin(deg)], axis=1) * np.array([[1.0], [5.0], [0.2], [3.0]])  # norms irrelevant
    nearest = np.deg2rad([10.0, 10.0, 20.0, 70.0])   # angle to the nearest other point
    second = np.deg2rad([30.0, 20.0, 30.0, 90.0])
    assert sc.knn_distance(pts, 1, "cosine") == pytest.approx(1 - np.cos(nearest), abs=1e-12)
    assert sc.knn_distance(pts, 2, "cosine") == pytest.approx(1 - np.cos(second), abs=1e-12)
    # released: Euclidean distance of unit vectors = chord 2 sin(θ/2)
    assert sc.knn_distance(pts, 1) == pytest.approx(2 * np.sin(nearest / 2), abs=1e-12)
    assert sc.knn_distance(pts, 2, "euclidean_normalized") == pytest.approx(2 * np.sin(second / 2), abs=1e-12)
    with pytest.raises(ValueError, match="k must"):
        sc.knn_distance(pts, k=4)
    with pytest.raises(ValueError, match="metric"):
        sc.knn_distance(pts, 1, "manhattan")


def test_setup_validation_names_the_field():
    with pytest.raises(ValueError, match=r"class_weights\[1\] must be > 0"):
        sc.ImbalanceSetup(class_weights=(1.0, 0.0, 2.0))
    with pytest.raises(ValueError, match=r"class_weights\[0\] must be > 0"):
        sc.ImbalanceSetup(class_weights=(-1.0, 2.0))
    for name, bad in (("lr", 0.0), ("temperature", -1.0), ("n_samples", 0), ("latent_dim", 1), ("epochs", 0),
                      ("eval_spread", -0.1), ("loss", "all"), ("batch_size", 1)):
        with pytest.raises(ValueError, match=name):
            sc.ImbalanceSetup(**{name: bad})


def test_defaults_are_the_released_ones():
    s = sc.ImbalanceSetup()
    assert (s.loss, s.eval_spread, s.class_spread, s.n_samples, s.temperature, s.lr) == ("symmetric", 0.1, 1.0, 2000, 1.0, 0.01)


def test_spherical_classes_follow_the_weights():
    setup = sc.ImbalanceSetup()
    x, u, labels = sc.spherical_classes((1, 2, 4, 8), 15000, setup, 1.0, torch.Generator().manual_seed(0))
    assert x.shape == (15000, 64) and u.shape == (15000, 10)
    assert torch.allclose(u.norm(dim=1), torch.ones(15000), atol=1e-5)          # on the sphere
    frac = np.bincount(labels.numpy(), minlength=4) / 15000
    assert frac == pytest.approx(np.array([1, 2, 4, 8]) / 15, abs=0.015)       # 1:2:4:8
    assert int(torch.linalg.matrix_rank(x[:200], rtol=1e-4)) == 10             # one fixed linear map of rank 10


def test_draw_partners_same_class_never_self():
    labels = torch.tensor([0, 0, 1, 2, 1, 0])
    for seed in range(5):
        part = sc.draw_partners(labels, torch.Generator().manual_seed(seed))
        assert part[3] == -1                                                     # class 2 has no partner
        for i in (0, 1, 2, 4, 5):
            assert part[i] != i and labels[part[i]] == labels[i]


def test_symmetric_mask_on_hand_made_partners():
    # anchor 0 -> 1, 1 -> 0, 2 -> 1, 3 none: the released loss also gives 1 the positive 2
    partners = torch.tensor([1, 0, 1, -1])
    one = sc.positive_mask(partners, symmetric=False)
    sym = sc.positive_mask(partners, symmetric=True)
    assert one.sum(1).tolist() == [1, 1, 1, 0]
    assert sym.sum(1).tolist() == [1, 2, 1, 0]
    assert sym[1, 2] and not one[1, 2] and torch.equal(sym, sym.t())


def test_pairs_infonce_by_hand():
    # z = (1,0), (0,1), (-1,0): cos(0,1) = 0, cos(0,2) = -1, cos(1,2) = 0; temperature 1
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    partners = torch.tensor([1, 0, 1])
    a = math.log(1 + math.exp(-1))             # anchors 0 and 2: -log(e^0 / (e^0 + e^-1))
    # symmetric: anchor 1 has positives {0, 2}, numerator = denominator -> 0
    assert float(sc.pairs_infonce(z, sc.positive_mask(partners, True), 1.0)) == pytest.approx(2 * a / 3, rel=1e-12)
    # one partner: anchor 1 has only 0 -> -log(1 / 2)
    assert float(sc.pairs_infonce(z, sc.positive_mask(partners, False), 1.0)) == pytest.approx((2 * a + math.log(2)) / 3,
                                                                                              rel=1e-12)


def test_run_is_seeded_leaves_global_rng_and_the_loss_option_matters():
    setup = sc.ImbalanceSetup(n_samples=96, epochs=2, batch_size=32, seeds=1)
    state = torch.get_rng_state()
    a = sc.train_imbalance_run(setup, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    b = sc.train_imbalance_run(setup, seed=3)
    assert a["class_norms"].shape == (3, 4) and np.isfinite(a["class_norms"]).all()
    assert np.array_equal(a["class_norms"], b["class_norms"])
    assert not np.array_equal(a["class_norms"], sc.train_imbalance_run(setup, seed=4)["class_norms"])
    other = sc.train_imbalance_run(sc.ImbalanceSetup(n_samples=96, epochs=2, batch_size=32, seeds=1,
                                                     loss="one_partner"), seed=3)
    assert np.array_equal(other["class_norms"][0], a["class_norms"][0])       # same data and init
    assert not np.array_equal(other["class_norms"][-1], a["class_norms"][-1])  # different training


def test_released_evaluation_set_is_new_balanced_and_tight():
    setup = sc.ImbalanceSetup(n_samples=2000, epochs=1, seeds=1)
    res = sc.imbalance_simulation(setup)
    trained, init, labels = res.evaluation(0, "released")
    assert trained.shape == init.shape == (2000, 10) and len(labels) == 2000
    counts = np.bincount(labels, minlength=4)
    assert (np.abs(counts - 500) < 4 * math.sqrt(2000 * 0.25 * 0.75)).all()   # balanced: binomial(2000, 1/4)
    r = res.runs[0]
    # mean resultant length of a class on the sphere ≈ E cos(u, μ) ≈ 1/sqrt(1 + d σ²):
    # spread 0.1 in d = 10 -> ≈ 0.95; the training set's spread 1 -> ≈ 0.30
    def resultant(latent, lab):
        return [np.linalg.norm(latent[lab == c].mean(0)) for c in range(4)]
    assert min(resultant(r["eval_latent"], r["eval_labels"])) > 0.9
    assert max(resultant(r["latent"], r["labels"])) < 0.5
    # the training points are the option "own" and differ from the evaluation set
    own, _, own_labels = res.evaluation(0, "own")
    assert np.array_equal(own, r["embeddings"]) and np.array_equal(own_labels, r["labels"])
    assert not np.allclose(own, trained)
    with pytest.raises(ValueError, match="evaluation"):
        res.evaluation(0, "test")


def test_imbalance_simulation_is_cached_and_read_only():
    setup = sc.ImbalanceSetup(n_samples=64, epochs=1, batch_size=32, seeds=2)
    r1 = sc.imbalance_simulation(setup)
    assert sc.imbalance_simulation(sc.ImbalanceSetup(n_samples=64, epochs=1, batch_size=32, seeds=2)) is r1
    assert r1.class_norms.shape == (2, 2, 4)
    with pytest.raises(ValueError):
        r1.class_norms[0, 0, 0] = 1.0
    h = r1.history()
    assert len(h) == 2 * 2 * 4 and set(h.columns) == {"seed", "epoch", "class", "weight", "mean_norm"}


def test_class_mean_norms_by_hand():
    z = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    assert sc.class_mean_norms(z, torch.tensor([0, 1, 0]), 3) == pytest.approx([7.5, 1.0, np.nan], nan_ok=True)


def test_loglog_slope_by_hand():
    w = np.array([1.0, 2.0, 4.0, 8.0])
    assert float(sc.loglog_slope(w, 3 * w ** 0.5)) == pytest.approx(0.5, abs=1e-12)     # noise-free power law
    # log2 w = 0, 1, 2, 3 (centred -1.5, -0.5, 0.5, 1.5; Sxx = 5), log2 y = 0, 0, 0, 3 -> 1.5 * 3 / 5 = 0.9
    assert float(sc.loglog_slope(w, [1.0, 1.0, 1.0, 8.0])) == pytest.approx(0.9, abs=1e-12)
    # rows: one slope each; units of weights and values do not matter; a NaN (empty class) gives NaN
    rows = np.array([7 * w ** -1.0, np.full(4, 5.0), [2.0, 2.0, np.nan, 2.0]])
    got = sc.loglog_slope(1000 * w, rows)
    assert got.shape == (3,) and got[:2] == pytest.approx([-1.0, 0.0], abs=1e-12) and np.isnan(got[2])
    # growth relative to each class's own initial norm: any initial norms cancel
    init = np.array([9.7, 6.8, 8.1, 7.3])
    assert float(sc.loglog_slope(w, (init * 1.1 * w ** 0.25) / init)) == pytest.approx(0.25, abs=1e-12)


@pytest.mark.parametrize("weights, values, match", [
    ([1.0, 0.0, 4.0], [1.0, 1.0, 1.0], "weights must be"),
    ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "not all be equal"),
    ([1.0, 2.0, 4.0], [1.0, 2.0], "3 entries on their last axis"),
    ([1.0, 2.0, 4.0], [1.0, -0.5, 2.0], "values must be > 0"),
])
def test_loglog_slope_errors(weights, values, match):
    with pytest.raises(ValueError, match=match):
        sc.loglog_slope(weights, values)


def test_batched_helpers_equal_their_single_run_results():
    labels = torch.tensor([[0, 0, 1, 1, 2, 0], [1, 1, 1, 0, 0, 2]])
    both = sc.draw_partners(labels, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    for i, seed in enumerate((1, 2)):
        assert torch.equal(both[i], sc.draw_partners(labels[i], torch.Generator().manual_seed(seed)))
    partners = torch.tensor([[1, 0, 1, -1], [-1, -1, -1, -1]])
    mask = sc.positive_mask(partners, symmetric=True)
    assert mask.shape == (2, 4, 4) and mask[0].sum(1).tolist() == [1, 2, 1, 0] and not mask[1].any()
    # run 0: four points at 90° steps on the circle; run 1: no positive -> loss 0, zero gradient
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]] * 2, dtype=torch.float64, requires_grad=True)
    loss = sc.pairs_infonce(z, mask, 1.0)
    # run 0, denominators e^0 + e^0 + e^-1 for every anchor; anchors 0 and 2: one positive (cos 0),
    # anchor 1: two (cos 0, cos 0); anchor 3 has none and is left out of the mean
    den = 2 + math.exp(-1)
    assert loss.shape == (2,)
    assert loss.detach().tolist() == pytest.approx([(2 * math.log(den) + math.log(den / 2)) / 3, 0.0], rel=1e-12)
    loss.sum().backward()
    assert torch.isfinite(z.grad).all() and not z.grad[1].any()


def test_runs_side_by_side_equal_single_runs():
    """Training seeds together (batched products) gives each seed the run it gets alone."""
    setup = sc.ImbalanceSetup(n_samples=96, epochs=3, batch_size=32, seeds=2)
    together = sc.train_imbalance_runs(setup, [3, 5])
    for seed, run in zip((3, 5), together):
        alone = sc.train_imbalance_run(setup, seed)
        for key in ("labels", "initial_embeddings", "eval_initial_embeddings", "latent", "eval_labels"):
            assert np.array_equal(run[key], alone[key]), key          # same data and init, exactly
        for key in ("class_norms", "loss", "embeddings", "eval_embeddings"):
            assert np.allclose(run[key], alone[key], rtol=1e-5, atol=1e-5), key   # float32 sums in another order
