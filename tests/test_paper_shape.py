"""The paper profile must start: every distinct paper-profile run of every artifact takes one
optimizer step and one evaluation on the CPU, at the paper's model shapes.

The runs come from the runner's own planning (``reproduce.runner._plan`` over every registered
artifact), with generated stand-ins for every dataset. Overridden, to keep this fast: the batch
size (2 per micro-batch; ``accumulation_steps`` stays the paper's), the data sizes (the smallest
class-stratified subsets) and the number of images evaluated (4 per split). Everything else --
ResNet-18 (CIFAR stem at 32 px), 2048-d SimSiam/BYOL heads, accumulation, the schedule, GradScale,
cut-initialization, imbalance, novel sets, precision -- is the paper's.

Runs that differ only in a number that does not change which code runs (weight decay, cut
constant, GradScale power > 0) are represented by the one with the largest cut constant, then
power; every one of them is still built (config, data, model, optimizer) in the first test.
"""

from __future__ import annotations

import functools
import math
import tempfile

import numpy as np
import pytest
import torch

from embedding_norms.config import NUM_CLASSES, RunConfig
from embedding_norms.data import SSLAugment, prepare_data
from embedding_norms.data.prepare import RunData
from embedding_norms.models import SSLModel
from embedding_norms.records import knn as _knn, norm_records as _norm_records, save_embeddings as _save_embeddings
from embedding_norms.train import _optimizer, train_steps

from reproduce.runner import planned_configs

BATCH = 2
EVAL_IMAGES = 4


def _tiny(cfg: RunConfig) -> RunConfig:
    n_cls = len(cfg.data.classes) if cfg.data.classes is not None else NUM_CLASSES[cfg.data.dataset]
    step = BATCH * cfg.optim.accumulation_steps  # the imbalance keeps about a quarter of a balanced subset
    n = max(n_cls, 4 * step)
    n_test = max(n_cls, NUM_CLASSES.get(cfg.eval.novel, 0))  # the novel set (e.g. CIFAR-100) uses test_size too
    return cfg.replace({"optim": {"batch_size": BATCH}, "data": {"train_size": n, "test_size": n_test},
                        "train": {"probe_size": max(10, n_cls)}, "eval": {"knn_k": min(cfg.eval.knn_k, n // 4)}})


@functools.lru_cache(maxsize=1)
def paper_runs() -> tuple[RunConfig, ...]:
    """Every distinct paper-profile run of every artifact, with tiny batch and data sizes."""
    empty = tempfile.mkdtemp(prefix="no_data_")  # nothing here: every dataset becomes a stand-in
    return tuple(_tiny(c) for c in planned_configs("paper", empty))


def _code_path(cfg: RunConfig) -> str:
    """The config without the numbers that do not change which code runs."""
    return cfg.replace({"train": {"seed": 0}, "optim": {"weight_decay": 0.0},
                        "norm": {"cut_constant": 1.0, "gradscale_power": float(cfg.norm.gradscale_power > 0)}}).hash()


def test_every_paper_run_builds():
    assert len(paper_runs()) >= 10, "the paper profile plans fewer runs than expected"
    for cfg in paper_runs():
        assert cfg.model.backbone == "resnet18" and (cfg.model.stem == "cifar" or cfg.data.image_size > 32), cfg.name
        if cfg.method.name != "simclr":
            assert cfg.model.projector_out_dim == 2048
        model = SSLModel(cfg)
        _optimizer(model, cfg)
        assert sum(p.numel() for p in model.backbone.parameters()) > 11_000_000  # ResNet-18, not a narrow one


def _shapes() -> list[RunConfig]:
    chosen: dict[str, RunConfig] = {}
    for cfg in paper_runs():
        k = _code_path(cfg)
        old = chosen.get(k)
        if old is None or (cfg.norm.cut_constant, cfg.norm.gradscale_power) > (old.norm.cut_constant, old.norm.gradscale_power):
            chosen[k] = cfg
    return list(chosen.values())


def _label(cfg: RunConfig) -> str:
    return "-".join([cfg.method.name, cfg.data.dataset, cfg.data.imbalance, f"novel={cfg.eval.novel}",
                     f"cut={cfg.norm.cut_constant:g}", f"gs={cfg.norm.gradscale_power:g}",
                     f"holdout={cfg.data.classes is not None}"])


def test_the_step_test_covers_every_kind_of_paper_run():
    seen = {(c.method.name, c.data.dataset, c.norm.cut_constant, c.norm.gradscale_power > 0) for c in _shapes()}
    assert {"simclr", "simsiam", "byol"} == {s[0] for s in seen}
    assert any(s[2] > 1 for s in seen) and any(s[3] for s in seen), "cut-init and GradScale variants must be covered"


@pytest.mark.slow
@pytest.mark.parametrize("cfg", _shapes(), ids=_label)
def test_paper_run_takes_a_step_and_evaluates(cfg, tmp_path):
    data = prepare_data(cfg.data, cfg.eval, cfg.train.seed, cfg.train.probe_size, str(tmp_path / "none"), False)
    assert data.train.standin
    o = cfg.optim
    torch.manual_seed(0)
    model = SSLModel(cfg)
    opt = _optimizer(model, cfg)
    before = [p.detach().clone() for p in model.online_parameters()]
    idx = torch.arange(o.batch_size * o.accumulation_steps) % len(data.train)
    micro = o.accumulation_steps * 100
    warm = 1  # the run's second optimizer step: the first one has learning rate 0 (warm-up from 0)
    aug = SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)
    losses, lr, step = train_steps(model, opt, data.train.images, [idx], aug, o, torch.Generator().manual_seed(0),
                                   torch.device("cpu"), warm, micro, cfg.train.epochs, cfg.train.precision)
    assert step == warm + 1 and len(losses) == o.accumulation_steps, cfg.name
    assert all(math.isfinite(v) for v in losses) and lr > 0, cfg.name
    assert any(not torch.equal(a, b) for a, b in zip(before, model.online_parameters())), f"{cfg.name}: no update"
    few = lambda s: s.subset(np.arange(min(EVAL_IMAGES, len(s))))  # noqa: E731
    small = RunData(few(data.train), few(data.test), few(data.probe), few(data.novel) if data.novel else None)
    row, _ = _norm_records(model, small, torch.device("cpu"), 1)
    vectors = ("h", "z") + (("p",) if cfg.method.name != "simclr" else ())
    assert all(math.isfinite(row[f"{k}_norm_mean"]) for k in vectors), cfg.name
    assert 0 <= _knn(model, small, cfg, torch.device("cpu")) <= 100
    _save_embeddings(model, small, cfg, torch.device("cpu"), tmp_path / "emb.npz")
    with np.load(tmp_path / "emb.npz") as z:
        assert z["train/z"].shape == (len(small.train), cfg.model.projector_out_dim)
        assert not any(k.startswith("test_all/") for k in z.files)      # only at train.full_test_norms_epochs
    # at an epoch of train.full_test_norms_epochs: the norms (no vectors) of every image of test_full
    full = RunData(small.train, small.test, small.probe, None, test_full=few(data.test_full))
    _save_embeddings(model, full, cfg.replace({"train": {"full_test_norms_epochs": [1]}}), torch.device("cpu"),
                     tmp_path / "emb1.npz", 1)
    with np.load(tmp_path / "emb1.npz") as z:
        assert z["test_all/z_norm"].shape == (len(full.test_full),) and "test_all/z" not in z.files
        assert (z["test_all/indices"] == full.test_full.indices).all()
