"""Shared fixtures. Tests that need the real CIFAR-10 files use ``data_dir``; it points at
``$EMBEDDING_NORMS_DATA`` or ``../shared/data`` and skips the test with the reason when neither exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _find_data_dir() -> Path | None:
    for cand in (os.environ.get("EMBEDDING_NORMS_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "cifar10_jpeg.npz").is_file():
            return Path(cand).resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _find_data_dir()
    if d is None:
        pytest.skip("real CIFAR-10 data not found: set EMBEDDING_NORMS_DATA to the offline data folder "
                    "(shared/data) to run this test")
    return d


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test gets its own cache and run store; outputs never touch the repository or shared/."""
    monkeypatch.setenv("EMBEDDING_NORMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMBEDDING_NORMS_RUNS", str(tmp_path / "runs"))
    torch.manual_seed(0)
    yield
