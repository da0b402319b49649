"""The released linear probe (issue 12): settings per method, the model left unchanged, and a
separable problem learnt to 100 %."""

import pytest
import torch

from embedding_norms.evaluate import RELEASED_PROBE, linear_probe_released
from embedding_norms.config import RunConfig
from embedding_norms.models import SSLModel


def test_released_probe_settings_are_the_released_ones():
    # lin_evaluator.py / PAPER.md: lr 0.1 (SimCLR), 0.5 (SimSiam, BYOL); 2 epochs, 8 for BYOL
    assert RELEASED_PROBE == {"simclr": (0.1, 2), "simsiam": (0.5, 2), "byol": (0.5, 8)}


def test_released_probe_learns_a_separable_task_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = SSLModel(RunConfig.load("simclr", "smoke", {"model": {"width": 4}}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # two classes that differ in brightness: any backbone separates them linearly
    n = 64
    imgs = torch.cat([torch.full((n, 3, 32, 32), 20, dtype=torch.uint8), torch.full((n, 3, 32, 32), 230, dtype=torch.uint8)])
    imgs = imgs + torch.randint(0, 5, imgs.shape, dtype=torch.uint8)
    labels = torch.cat([torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64)])
    res = linear_probe_released(model, imgs, labels, imgs, labels, torch.device("cpu"), lr=0.5, epochs=8, batch_size=32)
    assert res["test_acc"] == pytest.approx(100.0) and 1 <= res["best_epoch"] <= 8
    for k, v in model.state_dict().items():  # BatchNorm statistics of the copy move, the model's do not
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="epochs >= 1"):
        linear_probe_released(model, imgs, labels, imgs, labels, torch.device("cpu"), lr=0.1, epochs=0)
