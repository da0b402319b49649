"""Issue 19: a real epoch 0 (BatchNorm recalibrated), the learning gate, kNN k scaled with the bank,
and the final-BatchNorm columns. Expected values are closed forms or a second computation."""

from __future__ import annotations

import math

import pytest
import torch

from embedding_norms.config import RunConfig
from embedding_norms.evaluate import embed, recalibrated_batchnorm, scaled_knn_k
from embedding_norms.models import SSLModel
from embedding_norms.records import final_batchnorm_columns
from embedding_norms.report import ClaimCheck
from embedding_norms.stats import LEARNING_GATE_POINTS, VERDICTS, learning_gate


def _simsiam(out_dim: int = 64) -> SSLModel:
    cfg = RunConfig.load("simsiam", "smoke", {"model": {"projector_hidden_dim": out_dim, "projector_out_dim": out_dim,
                                                        "predictor_hidden_dim": 16}})
    torch.manual_seed(0)
    return SSLModel(cfg)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def test_recalibrated_eval_equals_train_mode_forward():
    """One recalibration batch: eval-mode outputs on that batch equal the train-mode forward pass
    (up to the n/(n-1) variance factor per layer, tiny at n = 512)."""
    model = _simsiam()
    x = _images(512)
    with torch.no_grad():
        model.train()
        ref = model(x.float() / 255)
    with recalibrated_batchnorm(model, x, torch.device("cpu"), batch_size=512):
        out = embed(model, x, torch.device("cpu"))
    for v, r in (("h", ref.h), ("z", ref.z), ("p", ref.p)):
        torch.testing.assert_close(out[v].norm(dim=1), r.norm(dim=1), rtol=1e-2, atol=1e-3)


def test_recalibrated_final_batchnorm_gives_closed_form_z_norm():
    """A projector ending in BatchNorm (gamma = 1, beta = 0 at init) outputs z with per-dimension
    batch mean 0 and variance 1, so mean ||z||^2 = d over the batch (closed form); with the initial
    running statistics (identity BatchNorm) it is far from d."""
    d = 64
    model = _simsiam(d)
    x = _images(512, seed=1)
    identity = embed(model, x, torch.device("cpu"))["z"]
    with recalibrated_batchnorm(model, x, torch.device("cpu"), batch_size=512):
        z = embed(model, x, torch.device("cpu"))["z"]
    assert float((z ** 2).sum(1).mean()) == pytest.approx(d, rel=0.02)  # n/(n-1) per upstream layer
    assert abs(float((identity ** 2).sum(1).mean()) - d) > 0.5 * d


def test_recalibration_restores_buffers_and_never_touches_weights():
    model = _simsiam()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initial_var = model.projector[-1].running_var.clone()
    model.train()
    with recalibrated_batchnorm(model, _images(64), torch.device("cpu"), batch_size=32):
        assert not torch.equal(model.projector[-1].running_var, initial_var)
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert model.training and model.projector[-1].momentum == 0.1


def test_recalibration_refuses_single_image_batches():
    with pytest.raises(ValueError, match="batch_size"):
        with recalibrated_batchnorm(_simsiam(), _images(8), torch.device("cpu"), batch_size=1):
            pass


def test_final_batchnorm_columns_at_initialisation():
    d = 64
    model = _simsiam(d)
    h = torch.randn(10, model.rep_dim)
    cols = final_batchnorm_columns(model, h, torch.device("cpu"))
    assert cols["z_bn_gamma_norm"] == pytest.approx(math.sqrt(d))  # gamma = 1 in each of d dimensions
    assert cols["z_bn_beta_norm"] == 0.0
    u = model.projector[:-1].eval()(h)
    assert cols["z_pre_bn_norm_mean"] == pytest.approx(float(u.norm(dim=1).mean()), rel=1e-5)
    simclr = SSLModel(RunConfig.load("simclr", "smoke"))
    assert final_batchnorm_columns(simclr, torch.randn(3, simclr.rep_dim), torch.device("cpu")) == {}


@pytest.mark.parametrize("bank,expected", [(50_000, 200), (3000, 12), (8841, 35), (500, 10), (5, 5)])
def test_knn_k_keeps_the_released_share_of_the_bank(bank, expected):
    assert scaled_knn_k(200, bank) == expected  # round(200 * bank / 50 000), at least 10, at most the bank


def test_learning_gate_on_hand_made_gains():
    assert "not testable" in VERDICTS
    assert learning_gate({"a": 8.0, "b": LEARNING_GATE_POINTS}) is None
    assert learning_gate({}) is None
    reason = learning_gate({"a": 8.0, "b": 2.3, "c": float("nan")})
    assert reason is not None and "2 of 3" in reason and "b +2.3" in reason and "c n/a" in reason
    check = ClaimCheck.from_effects("cut-init", "t", "s", [3.0, 4.0, 5.0], untestable=reason)
    assert check.verdict == "not testable" and check.detail.startswith("not testable")
    decided = ClaimCheck.from_effects("cut-init", "t", "s", [3.0, 4.0, 5.0])
    assert decided.verdict == "holds"


@pytest.mark.parametrize("method", ["simsiam", "byol"])
def test_quick_scale_rule_keeps_the_released_optimisation(method):
    """README "Deviations": the released micro-batch, lr^2 x accumulation (the step of the mean loss
    under the released schedule and summed losses) and the warm-up share / cosine coverage of the
    released run, read from the method's released YAML and checked on the quick profile's config."""
    import yaml

    from embedding_norms.config import CONFIG_DIR

    released = yaml.safe_load((CONFIG_DIR / f"{method}.yaml").read_text())["optim"]
    q = RunConfig.load(method, "quick")
    o = q.optim
    assert o.batch_size == released["batch_size"]
    assert o.lr ** 2 * o.accumulation_steps == pytest.approx(released["lr"] ** 2 * released["accumulation_steps"], rel=1e-4)
    assert o.accumulation == released["accumulation"] == "released"
    # optimizer steps of the warm-up / of the run, and the run / the cosine horizon, as released
    ratio = released["accumulation_steps"] / o.accumulation_steps
    assert o.horizon(q.train.epochs) == pytest.approx(q.train.epochs * ratio)
    warm_share = o.warmup_epochs * o.accumulation_steps / q.train.epochs   # warm-up optimizer steps / run steps
    assert warm_share == pytest.approx(10 * released["accumulation_steps"] / 512)
