"""What a training run records besides its loss: norms of h, z and p on the probe set with the
health columns (every epoch), the weighted kNN accuracy (evaluation epochs) and the saved
embeddings of the train, augmented-train, test and novel splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .data import RunData, SSLAugment
from .evaluate import embed, knn_accuracy, norm_summary
from .health import Diverged, health_columns
from .integrity import float16_or_32, save_npz_checked
from .models import SSLModel


def norm_records(model: SSLModel, data: RunData, device: torch.device, epoch: int,
                  knn: float = float("nan")) -> tuple[dict, list[dict]]:
    out = embed(model, data.probe.images, device)
    row: dict[str, Any] = {}
    norms = {v: out[v].norm(dim=1) for v in ("h", "z", "p") if v in out}  # columns h_norm_*, z_norm_*, p_norm_*
    for key, n in norms.items():
        for stat, v in norm_summary(n).items():
            row[f"{key}_norm_{stat}"] = v
    row.update(health_columns(out, model.predictor is not None, knn, data.num_classes))
    labels = data.probe.labels.numpy()
    per_class = []
    for c in range(data.num_classes):
        m = labels == c
        if m.any():
            per_class.append({"epoch": epoch, "class": c, "count": int(m.sum()),
                              **{f"{key}_norm_mean": float(n.numpy()[m].mean()) for key, n in norms.items()}})
    return row, per_class


def knn(model: SSLModel, data: RunData, cfg: RunConfig, device: torch.device) -> float:
    bank = embed(model, data.train.images, device)["h"]
    query = embed(model, data.test.images, device)["h"]
    return knn_accuracy(query, data.test.labels, bank, data.train.labels, data.num_classes,
                        cfg.eval.knn_k, cfg.eval.knn_temperature)


def save_embeddings(model: SSLModel, data: RunData, cfg: RunConfig, device: torch.device, path: Path) -> None:
    aug = SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)
    g = torch.Generator().manual_seed(cfg.train.seed * 7 + 12345)
    splits = {"train": (data.train, None), "train_aug": (data.train, aug), "test": (data.test, None)}
    if data.novel is not None:
        splits["novel"] = (data.novel, None)
    arrays: dict[str, np.ndarray] = {}
    for name, (s, a) in splits.items():
        out = embed(model, s.images, device, augment=a, generator=g)
        try:  # float16 where representable, float32 otherwise; non-finite values are refused
            for v in ("z", "p"):  # projector output z; predictor output p (SimSiam, BYOL)
                if v in out:
                    arrays[f"{name}/{v}"] = float16_or_32(out[v].numpy())
                    arrays[f"{name}/{v}_norm"] = out[v].norm(dim=1).numpy().astype(np.float32)
        except ValueError as exc:
            raise Diverged(f"{name} embeddings: {exc}") from None
        arrays[f"{name}/h_norm"] = out["h"].norm(dim=1).numpy().astype(np.float32)
        arrays[f"{name}/labels"] = s.labels.numpy().astype(np.int64)
        arrays[f"{name}/indices"] = np.asarray(s.indices, dtype=np.int64)
    save_npz_checked(path, arrays)
