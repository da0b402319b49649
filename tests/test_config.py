"""RunConfig: layering of method YAML + profile + overrides, validation errors, stable hash.

Expected values come from PAPER.md's settings table and from hand-written dicts; the pinned
hash is the SHA-256 of canonical JSON computed here with hashlib/json, not taken from the code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embedding_norms.config import (
    CONFIG_DIR,
    ConfigError,
    RunConfig,
    artifact_params,
    from_dict,
    load_profile,
    parse_dotted,
)

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- paper settings
def test_paper_profile_matches_paper_settings():
    """PAPER.md settings table: SimCLR lr 0.6 / T 0.5 / wd 1e-6 / batch 256 / 2-layer 128 projector;
    SimSiam & BYOL lr 0.2 nesterov, wd 5e-4, effective batch 1024, 3 x 2048 BN projector, 512 predictor."""
    s = RunConfig.load("simclr", "paper")
    assert (s.method.loss, s.method.temperature) == ("infonce", 0.5)
    assert (s.optim.lr, s.optim.momentum, s.optim.nesterov, s.optim.weight_decay) == (0.6, 0.9, False, 1e-6)
    assert s.optim.batch_size * s.optim.accumulation_steps == 256
    assert (s.model.projector_layers, s.model.projector_hidden_dim, s.model.projector_out_dim) == (2, 128, 128)
    assert s.model.projector_batchnorm is False and s.model.predictor_hidden_dim is None
    assert (s.model.backbone, s.model.stem) == ("resnet18", "cifar")  # paper profile: ResNet-18, CIFAR stem
    assert s.train.epochs == 512 and s.optim.warmup_epochs == 10 and s.optim.schedule_epochs == 512
    assert s.optim.final_lr == 1e-3
    for method in ("simsiam", "byol"):
        c = RunConfig.load(method, "paper")
        assert c.method.name == method and c.method.loss == "negative_cosine"
        assert (c.optim.lr, c.optim.momentum, c.optim.nesterov, c.optim.weight_decay) == (0.2, 0.9, True, 5e-4)
        assert c.optim.batch_size * c.optim.accumulation_steps == 1024
        assert (c.model.projector_layers, c.model.projector_hidden_dim, c.model.projector_out_dim) == (3, 2048, 2048)
        assert c.model.projector_batchnorm is True and c.model.predictor_hidden_dim == 512
    assert RunConfig.load("byol", "paper").method.ema_tau == 0.99


@pytest.mark.parametrize("method", ["simclr", "simsiam", "byol"])
@pytest.mark.parametrize("profile", ["paper", "quick", "smoke"])
def test_every_method_and_profile_loads(method, profile):
    cfg = RunConfig.load(method, profile)
    assert cfg.method.name == method
    assert cfg.name.startswith(f"{method}-cifar10-") and cfg.name.endswith(cfg.hash())
    # a config survives the YAML round trip of the run store unchanged
    again = from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg and again.hash() == cfg.hash()


def test_profile_layers_and_overrides_apply_in_order(tmp_path):
    """method file < profile ``run`` < profile ``methods.<method>`` < overrides (a profile written here,
    so that scale changes to the shipped profiles do not matter)."""
    cfg_dir = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, cfg_dir)
    (cfg_dir / "profiles" / "layers.yaml").write_text(yaml.safe_dump({
        "description": "test",
        "run": {"model": {"backbone": "resnet18_narrow", "width": 8, "projector_hidden_dim": 96},
                "train": {"epochs": 2, "eval_epochs": [0, 2], "save_embeddings_epochs": [2], "probe_size": 50}},
        "methods": {"simsiam": {"model": {"projector_hidden_dim": 256, "predictor_hidden_dim": 64}}},
    }))
    ss = RunConfig.load("simsiam", "layers", config_dir=cfg_dir)
    assert (ss.model.backbone, ss.model.width, ss.train.epochs) == ("resnet18_narrow", 8, 2)  # run section
    assert (ss.model.projector_hidden_dim, ss.model.predictor_hidden_dim) == (256, 64)  # methods.simsiam wins
    assert ss.optim.lr == 0.2 and ss.optim.predictor_constant_lr is True  # untouched: configs/simsiam.yaml
    sc = RunConfig.load("simclr", "layers", config_dir=cfg_dir)
    assert sc.model.projector_hidden_dim == 96 and sc.model.predictor_hidden_dim is None  # not simsiam's section
    # overrides (nested or dotted) win over everything
    o = RunConfig.load("simsiam", "layers", {"optim": {"weight_decay": 0}, "train.epochs": 3, "train.eval_epochs": [3],
                                             "model.predictor_hidden_dim": 32}, config_dir=cfg_dir)
    assert o.optim.weight_decay == 0.0 and isinstance(o.optim.weight_decay, float)
    assert o.train.epochs == 3 and o.train.eval_epochs == (3,) and o.model.predictor_hidden_dim == 32


def test_parse_dotted_reads_yaml_scalars():
    got = parse_dotted(["optim.lr=0.1", "train.epochs=4", "data.classes=[0, 1, 2, 3, 4]", "eval.novel=heldout",
                        "optim.schedule_epochs=null", "optim.nesterov=true", "optim.weight_decay=1e-6"])
    assert got["optim"]["lr"] == 0.1 and got["train"]["epochs"] == 4
    assert got["data"]["classes"] == [0, 1, 2, 3, 4] and got["eval"]["novel"] == "heldout"
    assert got["optim"]["schedule_epochs"] is None and got["optim"]["nesterov"] is True
    cfg = RunConfig.load("simclr", "smoke", got)
    assert cfg.data.classes == (0, 1, 2, 3, 4) and cfg.eval.novel == "heldout"
    # PyYAML reads "1e-6" as a string (YAML 1.1); a float key must still accept it
    assert cfg.optim.weight_decay == 1e-6
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_dotted(["optim.lr"])


def test_replace_validates():
    cfg = RunConfig.load("simclr", "smoke")
    assert cfg.replace({"norm.cut_constant": 3}).norm.cut_constant == 3.0
    assert cfg.replace({"norm": {"gradscale_power": 1}}).norm.gradscale_power == 1.0
    with pytest.raises(ConfigError, match="norm.cut_constant"):
        cfg.replace({"norm.cut_constant": 0})


def test_artifact_params_validate(tmp_path):
    """Artifact parameters are built into the artifact's frozen dataclass: unknown keys, wrong types
    and values its __post_init__ refuses are ConfigErrors naming the key; lists become tuples."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Params:
        n_points: int = 500
        lr: float = 10.0
        sizes: tuple[int, ...] = (1, 2)

        def __post_init__(self):
            if self.n_points < 1:
                raise ValueError(f"n_points must be >= 1, got {self.n_points}")

    cfg_dir = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, cfg_dir)
    prof = yaml.safe_load((cfg_dir / "profiles" / "smoke.yaml").read_text())

    def write(section):
        prof["artifacts"] = {"fig_x": section}
        (cfg_dir / "profiles" / "smoke.yaml").write_text(yaml.safe_dump(prof))

    write({"n_points": 50, "lr": 1, "sizes": [3, 4]})
    assert artifact_params("smoke", "fig_x", Params, cfg_dir) == Params(50, 1.0, (3, 4))
    write({"n_points": 50, "bogus": 1})
    with pytest.raises(ConfigError, match=r"artifacts\.fig_x\.bogus.*valid keys here: lr, n_points, sizes"):
        artifact_params("smoke", "fig_x", Params, cfg_dir)
    write({"n_points": "many"})
    with pytest.raises(ConfigError, match=r"artifacts\.fig_x\.n_points must be an integer"):
        artifact_params("smoke", "fig_x", Params, cfg_dir)
    write({"n_points": 0})
    with pytest.raises(ConfigError, match=r"artifacts\.fig_x: n_points must be >= 1, got 0"):
        artifact_params("smoke", "fig_x", Params, cfg_dir)


# --------------------------------------------------------------------------- validation errors
def test_unknown_method_and_profile():
    with pytest.raises(ConfigError, match=r"unknown method 'moco'.*simclr, simsiam, byol"):
        RunConfig.load("moco", "smoke")
    with pytest.raises(ConfigError, match=r"unknown profile 'huge'.*paper, quick, smoke"):
        RunConfig.load("simclr", "huge")


def test_unknown_dataset_is_rejected_with_choices():
    with pytest.raises(ConfigError, match=r"data\.dataset = 'imagenet' is not allowed.*'cifar10'.*'stanford_cars'"):
        RunConfig.load("simclr", "smoke", {"data.dataset": "imagenet"})
    with pytest.raises(ConfigError, match=r"eval\.novel.*'svhn'"):
        RunConfig.load("simclr", "smoke", {"eval.novel": "svhn"})


@pytest.mark.parametrize("override, key", [
    ({"optim": {"lrr": 0.1}}, "optim.lrr"),
    ({"optim.lrr": 0.1}, "optim.lrr"),
    ({"trainer": {"epochs": 1}}, "trainer"),
    ({"model.projector.dim": 3}, "model.projector"),
])
def test_unknown_key_is_named(override, key):
    with pytest.raises(ConfigError) as err:
        RunConfig.load("simclr", "smoke", override)
    msg = str(err.value)
    assert f"unknown config key '{key}'" in msg and "valid keys here" in msg


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    cfg_dir = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, cfg_dir)
    base = yaml.safe_load((cfg_dir / "simclr.yaml").read_text())
    base["optim"]["learning_rate"] = 0.3
    (cfg_dir / "simclr.yaml").write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError) as err:
        RunConfig.load("simclr", "smoke", config_dir=cfg_dir)
    assert str(cfg_dir / "simclr.yaml") in str(err.value) and "'optim.learning_rate'" in str(err.value)

    shutil.copy(CONFIG_DIR / "simclr.yaml", cfg_dir / "simclr.yaml")
    prof = yaml.safe_load((cfg_dir / "profiles" / "quick.yaml").read_text())
    prof["run"]["data"]["size"] = 10
    (cfg_dir / "profiles" / "quick.yaml").write_text(yaml.safe_dump(prof))
    with pytest.raises(ConfigError) as err:
        RunConfig.load("simclr", "quick", config_dir=cfg_dir)
    assert str(cfg_dir / "profiles" / "quick.yaml") in str(err.value) and "'data.size'" in str(err.value)

    prof = yaml.safe_load((CONFIG_DIR / "profiles" / "quick.yaml").read_text())
    prof["runs"] = {}
    (cfg_dir / "profiles" / "quick.yaml").write_text(yaml.safe_dump(prof))
    with pytest.raises(ConfigError, match=r"quick\.yaml: unknown top-level key\(s\) \['runs'\]"):
        load_profile("quick", cfg_dir)


def test_missing_or_broken_config_file(tmp_path):
    cfg_dir = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR / "profiles", cfg_dir / "profiles")
    with pytest.raises(ConfigError, match=r"simclr\.yaml does not exist"):
        RunConfig.load("simclr", "smoke", config_dir=cfg_dir)
    (cfg_dir / "simclr.yaml").write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.load("simclr", "smoke", config_dir=cfg_dir)


@pytest.mark.parametrize("key, value, fragment", [
    ("train.epochs", "ten", "train.epochs must be an integer"),
    ("train.epochs", 2.5, "train.epochs must be an integer"),
    ("train.epochs", True, "train.epochs must be an integer"),
    ("optim.lr", "fast", "optim.lr must be a number"),
    ("optim.nesterov", "yes", "optim.nesterov must be true or false"),
    ("optim.lr_schedule", "cosine", "optim.lr_schedule = 'cosine' is not allowed; choose one of 'released', 'intended'"),
    ("train.eval_epochs", 4, "train.eval_epochs must be a list"),
    ("data.classes", [0, "one"], "data.classes[1] must be an integer"),
    ("optim", 0.1, "optim must be a"),
])
def test_wrong_type_is_named(key, value, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig.load("simclr", "smoke", {key: value})
    assert fragment in str(err.value)


@pytest.mark.parametrize("override, fragment", [
    ({"train.epochs": -1}, "train.epochs must be a positive number of epochs, got -1"),
    ({"train.epochs": 0}, "train.epochs must be a positive number of epochs"),
    ({"train.epochs": 4, "train.eval_epochs": [0, 8]}, "contains epoch 8 outside 0..4"),
    ({"train.save_embeddings_epochs": [0, 2, 2]}, "lists epoch(s) [2] more than once"),
    ({"train.eval_epochs": [0, 0, 2]}, "train.eval_epochs lists epoch(s) [0] more than once"),
    ({"optim.lr": 0}, "optim.lr must be > 0"),
    ({"optim.momentum": 1.0}, "optim.momentum must be in [0, 1)"),
    ({"optim.weight_decay": -1e-4}, "optim.weight_decay must be >= 0"),
    ({"optim.batch_size": 1}, "optim.batch_size must be >= 2"),
    ({"norm.cut_constant": -3}, "norm.cut_constant must be > 0"),
    ({"data.classes": [0, 0, 1]}, "data.classes must list >= 2 distinct"),
    ({"eval.novel": "heldout"}, "eval.novel = heldout needs data.classes"),
    ({"data.classes": [0, 10]}, "contains class id 10, but cifar10 has classes 0..9"),
    ({"data.dataset": "cifar100", "train.probe_size": 99}, "train.probe_size must be at least the number of classes (100 in cifar100)"),
    ({"data.test_size": 9}, "data.test_size must be >= 10"),
    ({"optim.lr": float("inf")}, "optim.lr must be a finite number, got inf"),
    ({"norm.gradscale_power": float("nan")}, "norm.gradscale_power must be a finite number, got nan"),
    ({"norm.cut_constant": float("inf")}, "norm.cut_constant must be a finite number"),
    ({"optim.weight_decay": "1e999"}, "optim.weight_decay must be a finite number"),
    ({"train.seed": -5}, "train.seed must be >= 0, got -5"),
    ({"data.train_size": 100, "optim.batch_size": 64, "optim.accumulation_steps": 2}, "fewer images than one optimizer step"),
    ({"data.train_size": 1_000_000}, "data.train_size is 1000000, but cifar10 has only 50000 train images"),
    ({"data.classes": [0, 1], "data.test_size": 2001}, "but cifar10 has only 2000 test images in the 2 classes"),
    ({"data.classes": [0, 1, 2], "train.probe_size": 10, "data.train_size": 2}, "data.train_size must be >= 10"),
    ({"method.loss": "negative_cosine"}, "method.loss negative_cosine needs a predictor"),
    ({"method.name": "byol", "method.loss": "negative_cosine", "model.predictor_hidden_dim": 64},
     "method.name is 'byol' but the file is for 'simclr'"),
])
def test_invalid_values_are_named(override, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig.load("simclr", "smoke", override)
    assert fragment in str(err.value)


def test_simsiam_needs_predictor_and_cosine_loss():
    with pytest.raises(ConfigError, match="model.predictor_hidden_dim is required for simsiam"):
        RunConfig.load("simsiam", "smoke", {"model.predictor_hidden_dim": None})
    with pytest.raises(ConfigError, match="method.loss must be negative_cosine for byol"):
        RunConfig.load("byol", "smoke", {"method.loss": "infonce"})


def test_from_dict_rejects_non_mapping_and_names_source():
    with pytest.raises(ConfigError, match="runs/x/config.yaml: expected a mapping"):
        from_dict([1, 2], source="runs/x/config.yaml")
    with pytest.raises(ConfigError, match=r"runs/x/config.yaml: unknown config key 'data.sise'"):
        from_dict({"data": {"sise": 3}}, source="runs/x/config.yaml")


# --------------------------------------------------------------------------- hash
#: A complete config written out by hand in canonical form (tuples as lists, floats as floats).
HAND_CONFIG = {
    "method": {"name": "simclr", "loss": "infonce", "temperature": 0.5, "ema_tau": 0.99},
    "data": {"dataset": "cifar10", "imbalance": "exponential", "classes": [0, 1, 2, 3, 4], "train_size": 5000,
             "test_size": 2000, "image_size": 32, "standin": False, "jitter_strength": 0.5,
             "subset_seed": 0},
    "model": {"backbone": "resnet18_narrow", "stem": "cifar", "width": 16, "projector_hidden_dim": 128,
              "projector_out_dim": 128, "projector_layers": 2, "projector_batchnorm": False,
              "predictor_hidden_dim": None},
    "optim": {"lr": 0.6, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-06, "batch_size": 256,
              "accumulation_steps": 1, "warmup_epochs": 2.0, "warmup_fraction": None, "schedule_epochs": None,
              "final_lr": 0.001,
              "lr_schedule": "released", "accumulation": "released", "predictor_constant_lr": False},
    "norm": {"cut_constant": 3.0, "gradscale_power": 0.0},
    "train": {"epochs": 16, "seed": 7, "eval_epochs": [0, 1, 2, 4, 8, 16], "save_embeddings_epochs": [16],
              "probe_size": 1000, "linear_probe": False, "precision": "fp32", "compile": False},
    "eval": {"knn_k": 200, "knn_temperature": 0.1, "novel": "heldout", "linear_probe_epochs": 100,
             "linear_probe_variant": "logistic", "linear_probe_lr": None, "linear_probe_sgd_epochs": None,
             "knn_k_scaled": False, "epoch0_batchnorm": "recalibrated"},
}
#: sha256 of json.dumps(HAND_CONFIG, sort_keys=True, separators=(",", ":")), first 10 hex digits,
#: computed by hand from the dict above (not from RunConfig.hash()).
HAND_HASH = "c970061ca9"


def _reordered(d):
    """The same mapping with every dict's keys in reverse order."""
    if isinstance(d, dict):
        return {k: _reordered(d[k]) for k in reversed(list(d))}
    return d


def test_hash_is_sha256_of_canonical_json():
    blob = json.dumps(HAND_CONFIG, sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(blob.encode()).hexdigest()[:10]
    assert expected == HAND_HASH
    cfg = from_dict(HAND_CONFIG)
    assert cfg.to_dict() == HAND_CONFIG
    assert cfg.hash() == HAND_HASH
    assert cfg.name == f"simclr-cifar10-imb-holdout-{HAND_HASH}"


def test_hash_ignores_key_order_and_int_vs_float():
    assert from_dict(_reordered(HAND_CONFIG)).hash() == HAND_HASH
    as_ints = json.loads(json.dumps(HAND_CONFIG))
    as_ints["optim"]["warmup_epochs"] = 2       # YAML "2" vs "2.0" for a float key
    as_ints["norm"]["cut_constant"] = 3
    as_ints["data"]["classes"] = (0, 1, 2, 3, 4)  # tuple vs list
    assert from_dict(as_ints).hash() == HAND_HASH


def test_hash_changes_with_seed_and_every_section():
    base = from_dict(HAND_CONFIG)
    changed = {
        base.replace({"train.seed": 8}).hash(),
        base.replace({"optim.weight_decay": 0}).hash(),
        base.replace({"norm.gradscale_power": 1}).hash(),
        base.replace({"data.classes": [5, 6, 7, 8, 9]}).hash(),
        base.replace({"model.width": 32}).hash(),
        base.replace({"eval.knn_k": 10}).hash(),
        base.replace({"method.temperature": 0.1}).hash(),
    }
    assert len(changed) == 7 and HAND_HASH not in changed
    assert base.replace({"train.seed": 7}).hash() == HAND_HASH  # a no-op replace keeps it


def test_hash_is_stable_across_processes():
    code = ("from embedding_norms.config import RunConfig\n"
            "print(RunConfig.load('simsiam', 'quick', {'train.seed': 3}).hash())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == RunConfig.load("simsiam", "quick", {"train.seed": 3}).hash()


def test_paper_profile_evaluates_simclr_and_simsiam_at_the_released_extra_epochs():
    """The released code also checkpoints and evaluates SimCLR and SimSiam at epochs 100, 300 and
    500 (issue 12, item 9); BYOL keeps the powers of two."""
    for m in ("simclr", "simsiam"):
        assert {100, 300, 500} <= set(RunConfig.load(m, "paper").train.eval_epochs)
    assert RunConfig.load("byol", "paper").train.eval_epochs == (16, 32, 64, 128, 256, 512)
