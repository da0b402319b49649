"""Precision (bf16 autocast), device-resident data, worker layout, measured rates and the
benchmark scripts (issue 13)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from embedding_norms import speed
from embedding_norms.config import ConfigError, RunConfig
from embedding_norms.data import SSLAugment, make_standin
from embedding_norms.launch import default_layout
from embedding_norms.models import SSLModel
from embedding_norms.train import _optimizer, autocast, keeps_data_on_device, train_steps, training_images

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


# --------------------------------------------------------------------------- config
def test_precision_is_validated_and_part_of_the_hash():
    fp32 = RunConfig.load("simclr", "smoke")
    bf16 = RunConfig.load("simclr", "smoke", {"train.precision": "bf16"})
    assert fp32.train.precision == "fp32" and not fp32.train.compile
    assert fp32.hash() != bf16.hash()
    with pytest.raises(ConfigError, match="train.precision.*fp16"):
        RunConfig.load("simclr", "smoke", {"train.precision": "fp16"})
    with pytest.raises(ConfigError, match="train.compile"):
        RunConfig.load("simclr", "smoke", {"train.compile": "yes"})


def test_paper_profile_stays_fp32():
    for m in ("simclr", "simsiam", "byol"):
        assert RunConfig.load(m, "paper").train.precision == "fp32"


# --------------------------------------------------------------------------- autocast
def test_autocast_context():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert lin(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert lin(x).dtype == torch.float32
    with pytest.raises(ConfigError, match="fp32 or bf16"):
        autocast(torch.device("cpu"), "half")


def _smoke_setup(precision: str):
    cfg = RunConfig.load("simclr", "smoke", {"train.precision": precision, "optim.batch_size": 8})
    torch.manual_seed(0)
    model = SSLModel(cfg)
    return cfg, model, _optimizer(model, cfg), SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_steps_casts_forward_only_and_keeps_fp32_weights(precision, monkeypatch):
    cfg, model, opt, aug = _smoke_setup(precision)
    images = make_standin("cifar10", "train", per_class=2).images
    seen = []
    orig = model.loss

    def spy(x1, x2):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), x1.dtype))
        return orig(x1, x2)

    monkeypatch.setattr(model, "loss", spy)
    losses, _, step = train_steps(model, opt, images, [torch.arange(8)], aug, cfg.optim, torch.Generator().manual_seed(0),
                                  torch.device("cpu"), 3, 10, cfg.train.epochs, precision)
    assert step == 4 and len(seen) == 1
    enabled, dtype, x_dtype = seen[0]
    assert enabled == (precision == "bf16") and x_dtype == torch.float32
    if enabled:
        assert dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s["momentum_buffer"].dtype == torch.float32 for s in opt.state.values())


def test_fp32_cpu_step_equals_a_plain_loop():
    """The fp32 CPU path (images indexed on the CPU, no autocast) is the plain training step."""
    cfg, model, opt, aug = _smoke_setup("fp32")
    images = make_standin("cifar10", "train", per_class=2).images
    idx = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    ref = SSLModel(cfg)
    ref.load_state_dict(model.state_dict())
    ref_opt = _optimizer(ref, cfg)
    assert training_images(images, torch.device("cpu")) is images
    train_steps(model, opt, images, [idx], aug, cfg.optim, torch.Generator().manual_seed(5), torch.device("cpu"),
                3, 10, cfg.train.epochs)
    g = torch.Generator().manual_seed(5)
    for mine, group in zip(opt.param_groups, ref_opt.param_groups):  # the schedule is tested in test_train.py
        group["lr"] = mine["lr"]
    x1, x2 = aug(images[idx], g), aug(images[idx], g)
    ref.train()
    loss, _ = ref.loss(x1, x2)
    loss.backward()
    ref_opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------- data placement
def test_training_images_stay_on_the_cpu_and_move_once_to_an_accelerator():
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    assert not keeps_data_on_device(torch.device("cpu"))
    assert keeps_data_on_device(torch.device("cuda")) and keeps_data_on_device("cuda:1")
    assert training_images(images, torch.device("cpu")) is images  # no copy on the CPU
    moved = training_images(images, torch.device("meta"))  # a non-CPU device that exists without a GPU
    assert moved.device.type == "meta" and moved.dtype == torch.uint8 and moved.shape == images.shape


# --------------------------------------------------------------------------- worker layout
@pytest.mark.parametrize("pending, cpus, device, expected", [
    (12, 2, "cpu", (2, 1)), (2, 2, "cpu", (2, 1)), (1, 2, "cpu", (1, 2)), (0, 2, "cpu", (1, 2)),
    (3, 8, "cpu", (3, 2)), (5, 16, "cpu", (5, 3)), (12, 8, "cuda", (1, 8)), (12, 8, "cuda:0", (1, 8))])
def test_default_layout(pending, cpus, device, expected):
    assert default_layout(pending, cpus, device) == expected


def test_default_layout_rejects_bad_input():
    with pytest.raises(ValueError, match="cpu_count"):
        default_layout(3, 0)


def test_jobs_option_accepts_auto_and_positive_numbers():
    from reproduce.runner import build_parser

    p = build_parser()
    assert p.parse_args([]).jobs == "auto"
    assert p.parse_args(["--jobs", "3"]).jobs == 3
    with pytest.raises(SystemExit):
        p.parse_args(["--jobs", "0"])


# --------------------------------------------------------------------------- measured rates
def test_projected_hours_by_hand(tmp_path):
    cfg = RunConfig.load("simsiam", "smoke")  # batch x accumulation images per optimizer step
    step = cfg.optim.batch_size * cfg.optim.accumulation_steps
    n = 3 * step + 1  # the last, incomplete step is not trained
    assert speed.run_pairs(cfg, n) == cfg.train.epochs * 3 * step
    rates = {"simsiam": {"fp32": 10.0}}
    assert speed.projected_hours([(cfg, n)] * 2, rates) == pytest.approx(2 * cfg.train.epochs * 3 * step / 10 / 3600)
    big = cfg.replace({"data": {"image_size": 64}})
    assert speed.projected_hours([(big, n)], rates) == pytest.approx(4 * cfg.train.epochs * 3 * step / 10 / 3600)
    assert speed.projected_hours([(cfg, n)], {"simsiam": {"bf16": 1.0}}) is None


def test_rates_file_round_trip_and_dry_run_line(tmp_path):
    path = tmp_path / "rates.json"
    cfg = RunConfig.load("simclr", "smoke")
    line = speed.hours_line([(cfg, 1000)], "cpu", "smoke", path)
    assert "no measured training rate" in line and "throughput.py --profile smoke --record" in line
    name = speed.device_name("cpu")
    speed.record_rates("other device", "paper", {"pairs_per_second": {"simclr": {"fp32": 1.0}}}, path)
    speed.record_rates(name, "smoke", {"measured": "today", "pairs_per_second": {"simclr": {"fp32": 3600.0}}}, path)
    assert set(json.loads(path.read_text())) == {"other device", name}
    hours = speed.run_pairs(cfg, 1000) / 3600 / 3600
    assert f"{hours:.1f} CPU-hours" in speed.hours_line([(cfg, 1000)], "cpu", "smoke", path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        speed.load_rates(path)


# --------------------------------------------------------------------------- scripts
def test_precision_check_rule_by_hand():
    import precision_check

    rows = []
    # fp32 seeds 1, 2, 3 (SD 1); bf16 seeds 2.9, 3.9, 4.9 (SD 1): pooled SD 1, difference 1.9 -> within 2 SD
    # at epoch 1; at epoch 2 bf16 is 2.1 higher -> outside.
    for epoch, shift in ((1, 1.9), (2, 2.1)):
        for seed, v in enumerate((1.0, 2.0, 3.0)):
            for precision, value in (("fp32", v), ("bf16", v + shift)):
                rows.append(dict(method="simclr", precision=precision, seed=seed, epoch=epoch, z_norm_mean=value,
                                 emb_norm_mean=value, knn_acc=float("nan")))
    out = precision_check.compare(pd.DataFrame(rows)).set_index(["metric", "epoch"])
    assert out.loc[("z_norm_mean", 1), "pooled_sd"] == pytest.approx(1.0)
    assert out.loc[("z_norm_mean", 1), "diff"] == pytest.approx(1.9)
    assert bool(out.loc[("z_norm_mean", 1), "within"]) and not bool(out.loc[("z_norm_mean", 2), "within"])
    assert "knn_acc" not in out.index.get_level_values(0)  # NaN epochs (no kNN) are not compared


def test_gpu_check_runs_on_the_cpu_at_tiny_sizes(tmp_path, capsys):
    import gpu_check

    out = gpu_check.main(["--tiny", "--device", "cpu", "--rates-file", str(tmp_path / "rates.json")])
    text = capsys.readouterr().out
    assert "s per epoch" in text and "projected 512-epoch run" in text
    assert {r["precision"] for r in out["throughput"]["results"]} == {"fp32", "bf16"}
    assert out["epoch"]["epoch_seconds"] > 0 and out["epoch"]["projected_hours"] > 0
    assert not (tmp_path / "rates.json").exists()  # --tiny records nothing
