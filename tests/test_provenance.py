"""Which code and data trained a run (issue 12, "Which code trained a run"): provenance records,
stale runs after a change of the training code, ``--retrain-stale``, data source in the identity."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from embedding_norms.config import RunConfig
from embedding_norms.data.sources import data_source, resolve_data_source
from embedding_norms.provenance import TRAINING_FILES
from embedding_norms.runs import RunStore
from embedding_norms.train import train

REPO = Path(__file__).resolve().parents[1]
TINY = {"model": {"backbone": "resnet18_narrow", "width": 4, "projector_hidden_dim": 16, "projector_out_dim": 16},
        "data": {"standin": True, "train_size": 64, "test_size": 50},
        "optim": {"batch_size": 32},
        "train": {"epochs": 1, "eval_epochs": [0, 1], "save_embeddings_epochs": [1], "probe_size": 50}}

SCRIPT = """
import json, sys
import embedding_norms
from embedding_norms.config import RunConfig
from embedding_norms.launch import execute, stale_runs
from embedding_norms.provenance import code_fingerprint, read
from embedding_norms.runs import RunStore
cfg = RunConfig.load("simclr", "smoke", json.loads(sys.argv[3]))
store, mode = RunStore(sys.argv[1]), sys.argv[2]
if mode != "check":
    execute([cfg], store, progress=False, retrain_stale=(mode == "retrain"))
print(json.dumps({"stale": store.stale(cfg), "listed": [c.name for c in stale_runs([cfg], store)],
                  "state": store.status(cfg).state, "recorded": read(store.path(cfg)),
                  "current": code_fingerprint(), "package": embedding_norms.__file__}))
"""


def _in_copy(code: Path, store: Path, mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code / "src")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(store), mode, json.dumps(TINY)], cwd=code, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_changed_training_code_makes_the_run_stale_and_retrain_stale_retrains_it(tmp_path):
    code = tmp_path / "code"  # a temporary copy of the package: the worktree is never modified
    shutil.copytree(REPO / "src", code / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configs", code / "configs")
    store = tmp_path / "runs"

    first = _in_copy(code, store, "train")
    assert first["package"].startswith(str(code))
    assert first["state"] == "done" and not first["stale"] and first["listed"] == []
    rec = first["recorded"]
    assert rec["code_fingerprint"] == first["current"] and rec["data_source"] == "standin"
    assert rec["git_commit"] is None and rec["git_dirty"] is None  # the copy is not a git checkout

    losses = code / "src" / "embedding_norms" / "losses.py"  # a training-relevant file changes
    losses.write_text(losses.read_text() + "\n_CHANGED_FOR_TEST = True\n")
    after = _in_copy(code, store, "plain")  # by default a stale run is reported and used as it is
    assert after["stale"] and len(after["listed"]) == 1 and after["state"] == "done"
    assert after["current"] != first["current"] and after["recorded"] == rec  # not retrained

    retrained = _in_copy(code, store, "retrain")
    assert retrained["state"] == "done" and not retrained["stale"] and retrained["listed"] == []
    assert retrained["recorded"]["code_fingerprint"] == after["current"]


def test_fingerprint_covers_the_training_files():
    pkg = REPO / "src" / "embedding_norms"
    for rel in TRAINING_FILES:
        assert (pkg / rel).is_file(), rel  # a renamed file must not silently drop out of the fingerprint
    for rel in ("train.py", "losses.py", "models.py", "norm_control.py", "data/augment.py"):
        assert rel in TRAINING_FILES


def test_stale_checkpoint_is_never_resumed(tmp_path, monkeypatch):
    import embedding_norms.provenance as prov

    cfg = RunConfig.load("simclr", "smoke", TINY)
    store = RunStore(tmp_path / "runs")
    assert train(cfg, store, progress=False).state == "done"
    store.set_status(cfg, "running", "simulated interruption", epoch=1)
    monkeypatch.setattr(prov, "code_fingerprint", lambda: "0" * 64)  # as if the training code had changed
    assert train(cfg, store, progress=False).state == "done"
    log = (store.path(cfg) / "train.log").read_text()
    assert "written by other training code" in log and log.count("resumed from") == 0
    assert prov.read(store.path(cfg))["code_fingerprint"] == "0" * 64


def test_data_source_is_part_of_the_identity(tmp_path):
    jpeg, pickles = tmp_path / "jpeg", tmp_path / "pickles"
    jpeg.mkdir()
    (jpeg / "cifar10_jpeg.npz").write_bytes(b"")  # only located, never decoded here
    (pickles / "cifar-10-batches-py").mkdir(parents=True)
    assert data_source("cifar10", jpeg) == "npz" and data_source("cifar10", pickles) == "torchvision"
    assert data_source("cifar10", tmp_path / "empty", download=False) is None
    base = RunConfig.load("simclr", "smoke", {"data": {"train_size": 64}})
    a, b = resolve_data_source(base, jpeg), resolve_data_source(base, pickles)
    assert (a.data.source, b.data.source) == ("npz", "torchvision")
    assert len({base.hash(), a.hash(), b.hash()}) == 3  # JPEG copy and pickles are different runs
    # an unrecorded source keeps the hash of configs written before the field existed
    assert "source" not in base.to_dict()["data"] and a.to_dict()["data"]["source"] == "npz"


def test_run_refuses_data_other_than_planned(tmp_path):
    cfg = RunConfig.load("simclr", "smoke", {**TINY, "data": {**TINY["data"], "source": "npz"}})  # planned: JPEG
    store = RunStore(tmp_path / "runs")
    st = train(cfg, store, progress=False)  # but the run is a stand-in
    assert st.state == "failed" and "data.source=npz" in st.reason and "'standin'" in st.reason


def test_runner_status_shows_stale_runs(tmp_path, capsys):
    from reproduce import runner
    from reproduce.artifact import Plan, plan_artifact
    from reproduce.registry import load_artifacts

    store = RunStore(tmp_path / "runs")
    planned = plan_artifact(load_artifacts()["tab_gradscale"], Plan("smoke", str(tmp_path / "nodata")))
    specs = [s for s in planned.specs.values() if s.cfg is not None]
    spec = specs[0]
    store.ensure(spec.cfg)
    (store.path(spec.cfg) / "metrics.csv").write_text("epoch,loss\n0,1.0\n")  # trained before records were kept
    store.set_status(spec.cfg, "done")
    args = ["--profile", "smoke", "--runs", str(store.root), "--data-dir", str(tmp_path / "nodata")]
    (tmp_path / "nodata").mkdir()
    assert runner.main(["status", "tab_gradscale", *args]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if spec.cfg.name in ln]
    assert len(lines) == 1 and "stale" in lines[0]
    assert runner.main(["tab_gradscale", "--dry-run", "--retrain-stale", *args]) == 0
    out = capsys.readouterr().out
    assert spec.cfg.name in out  # listed among the runs to train
    n_needed = len({s.cfg.hash() for s in specs})
    assert f"{n_needed} to train" in out
