"""One checkout per build (issue 23): the runner, a per-artifact script and the single-run command
refuse code of two checkouts (exit 2 before anything is trained or written, naming both checkouts
and the fix); with ``PYTHONPATH=src`` a second clone builds into its own tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import embedding_norms
from embedding_norms.provenance import (MixedCheckoutError, check_one_checkout, describe_code, enclosing_checkout,
                                        source_checkout)

REPO = Path(__file__).resolve().parents[1]
#: the checkout whose library this test process imports (editable install, or PYTHONPATH=src)
FIRST = Path(embedding_norms.__file__).resolve().parents[2]


def _fake_checkout(root: Path) -> Path:
    """A folder shaped like a checkout: pyproject.toml, src/embedding_norms/, reproduce/."""
    for pkg in (root / "src" / "embedding_norms", root / "reproduce"):
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def test_checkouts_are_recognised_by_their_layout(tmp_path):
    a = _fake_checkout(tmp_path / "a")
    installed = a / ".venv" / "lib" / "python3.11" / "site-packages" / "embedding_norms"  # a regular install inside a
    installed.mkdir(parents=True)
    assert source_checkout(a / "src" / "embedding_norms") == a.resolve()
    assert source_checkout(a / "reproduce") == a.resolve()
    assert source_checkout(installed) is None
    assert enclosing_checkout(a / "src" / "embedding_norms") == a.resolve()
    assert enclosing_checkout(tmp_path) is None


def test_one_checkout_is_accepted_and_two_are_refused(tmp_path):
    a, b = _fake_checkout(tmp_path / "a"), _fake_checkout(tmp_path / "b")
    same = {"artifact code (reproduce)": a / "reproduce", "library (embedding_norms)": a / "src" / "embedding_norms"}
    assert check_one_checkout(same, cwd=a) == a.resolve()
    assert check_one_checkout(same, cwd=tmp_path) == a.resolve()  # outside any checkout: the code's
    site = tmp_path / "site-packages" / "embedding_norms"
    site.mkdir(parents=True)  # a regular install of the library with this checkout's artifact code
    assert check_one_checkout({"artifact code (reproduce)": b / "reproduce", "library (embedding_norms)": site},
                              cwd=b) == b.resolve()

    mixed = {"artifact code (reproduce)": b / "reproduce", "library (embedding_norms)": a / "src" / "embedding_norms"}
    with pytest.raises(MixedCheckoutError) as exc:
        check_one_checkout(mixed, cwd=b)
    text = str(exc.value)
    assert f"checkout {b.resolve()}" in text and f"checkout {a.resolve()}" in text
    assert f"pip install -e {b.resolve()}" in text and f"PYTHONPATH={b.resolve() / 'src'}" in text
    assert exc.value.here == b.resolve()
    with pytest.raises(MixedCheckoutError):  # all the code of a, started inside b
        check_one_checkout(same, cwd=b / "reproduce")


def _git_clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                     capture_output=True).returncode != 0:
        pytest.skip("the repository is not a git checkout (or git is missing): no second clone to make")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    return clone


def _run(args, cwd: Path, pythonpath: str, timeout=300):
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _snapshot(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")} if root.exists() else {}


@pytest.mark.slow
def test_second_clone_with_the_first_checkouts_code_is_refused_then_builds_with_pythonpath_src(tmp_path):
    if source_checkout(FIRST / "src" / "embedding_norms") is None:
        pytest.skip("the library under test is an installed copy, not a checkout's")
    clone = _git_clone(tmp_path)
    first_outputs = _snapshot(FIRST / "outputs")
    runs = tmp_path / "runs"
    build = ["-m", "reproduce", "fig1_gradient_geometry", "--profile", "smoke", "--runs", str(runs), "--no-progress"]

    # 1. the first checkout's library (as its editable install provides it), the clone's artifact code
    out = _run(build, clone, str(FIRST / "src"))
    assert out.returncode == 2, out.stdout + out.stderr
    for must in (str(clone), str(FIRST), "pip install -e", "PYTHONPATH="):
        assert must in out.stderr, (must, out.stderr)
    # a per-artifact script of the clone, with the first checkout's reproduce and library
    script = _run(["reproduce/fig1_gradient_geometry.py", "--profile", "smoke", "--runs", str(runs)], clone,
                  f"{FIRST / 'src'}{os.pathsep}{FIRST}")
    assert script.returncode == 2 and str(clone) in script.stderr and str(FIRST) in script.stderr, script.stderr
    # the single-run command of the first checkout, started in the clone
    single = _run(["-m", "embedding_norms.train_cli", "--method", "simclr", "--profile", "smoke", "--runs", str(runs)],
                  clone, str(FIRST / "src"))
    assert single.returncode == 2 and str(clone) in single.stderr and str(FIRST) in single.stderr, single.stderr
    assert not runs.exists() and not (clone / "outputs").exists()  # nothing trained or written
    assert _snapshot(FIRST / "outputs") == first_outputs

    # 2. PYTHONPATH=src: the clone's own code, outputs into the clone's own tree
    ok = _run(build, clone, "src")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert not ok.stdout.startswith("outputs go to")  # they go into the working directory's checkout
    res = json.loads((clone / "outputs" / "smoke" / "results" / "fig1_gradient_geometry.json").read_text())
    assert res["status"] == "built"
    assert _snapshot(FIRST / "outputs") == first_outputs  # the first checkout is untouched
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    header = (clone / "outputs" / "smoke" / "REPORT.md").read_text().split("## Summary")[0]
    assert f"from checkout {clone.resolve()} at commit {commit.strip()[:10]}" in header


def test_outputs_outside_the_working_directorys_checkout_are_named_on_the_first_line(tmp_path):
    out = _run(["-m", "reproduce", "fig1_gradient_geometry", "--profile", "smoke", "--runs", str(tmp_path / "runs"),
                "--out", str(tmp_path / "out"), "--no-progress"], REPO, str(REPO / "src"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == (f"outputs go to {(tmp_path / 'out').resolve()} (not into the working "
                                          f"directory's checkout {REPO.resolve()})")


def test_describe_code_names_each_checkout_once(tmp_path):
    a = _fake_checkout(tmp_path / "a")
    site = tmp_path / "site-packages" / "embedding_norms"
    site.mkdir(parents=True)
    one = describe_code({"artifact code": a / "reproduce", "library": a / "src" / "embedding_norms"})
    assert one.count(str(a.resolve())) == 1 and one.startswith("artifact code and library from checkout")
    two = describe_code({"artifact code": a / "reproduce", "library": site})
    assert f"library from installed copy {site.resolve()}" in two and f"checkout {a.resolve()}" in two
