"""What a training run records besides its loss: norms of h, z and p on the probe set with the
health columns (every epoch), the weighted kNN accuracy (evaluation epochs) and the saved
embeddings of the train, augmented-train, test and novel splits (and the norms of every test image,
split ``test_all``, where ``train.full_test_norms_epochs`` asks for them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .config import RunConfig
from .data import RunData, SSLAugment
from .evaluate import embed, knn_accuracy, norm_summary, scaled_knn_k
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
    row.update(final_batchnorm_columns(model, out["h"], device))
    row.update(health_columns(out, model.predictor is not None, knn, data.num_classes))
    labels = data.probe.labels.numpy()
    per_class = []
    for c in range(data.num_classes):
        m = labels == c
        if m.any():
            per_class.append({"epoch": epoch, "class": c, "count": int(m.sum()),
                              **{f"{key}_norm_mean": float(n.numpy()[m].mean()) for key, n in norms.items()}})
    return row, per_class


@torch.no_grad()
def final_batchnorm_columns(model: SSLModel, h: torch.Tensor, device: torch.device) -> dict[str, float]:
    """What a projector that ends in BatchNorm fixes about ``||z||`` (issue 19).

    In eval mode such a projector outputs ``z_j = gamma_j * (u_j - mu_j) / sigma_j + beta_j`` of the
    last Linear's output ``u``, so ``||z||`` is about ``||gamma||_2`` (sqrt(d) |gamma| for equal
    gammas; 22.6 for d = 512 at initialisation) whatever ``u`` does. Returns ``z_bn_gamma_norm``
    (``||gamma||_2`` of that BatchNorm), ``z_bn_beta_norm`` and ``z_pre_bn_norm_mean`` (mean
    ``||u||`` over the probe images ``h``: ``(N, d_h)``, eval mode); ``{}`` for a projector
    without a final BatchNorm (SimCLR).
    """
    bn = model.projector[-1]
    if not isinstance(bn, torch.nn.BatchNorm1d):
        return {}
    was_training = model.training
    model.eval()
    try:
        u = torch.cat([model.projector[:-1](h[i:i + 1024].to(device)).float().cpu() for i in range(0, len(h), 1024)])
    finally:
        model.train(was_training)
    return {"z_bn_gamma_norm": float(bn.weight.detach().float().norm()),
            "z_bn_beta_norm": float(bn.bias.detach().float().norm()),
            "z_pre_bn_norm_mean": float(u.norm(dim=1).mean())}


def knn(model: SSLModel, data: RunData, cfg: RunConfig, device: torch.device) -> float:
    bank = embed(model, data.train.images, device)["h"]
    query = embed(model, data.test.images, device)["h"]
    k = scaled_knn_k(cfg.eval.knn_k, len(bank)) if cfg.eval.knn_k_scaled else cfg.eval.knn_k
    return knn_accuracy(query, data.test.labels, bank, data.train.labels, data.num_classes, k,
                        cfg.eval.knn_temperature)


def save_embeddings(model: SSLModel, data: RunData, cfg: RunConfig, device: torch.device, path: Path,
                    epoch: Optional[int] = None) -> None:
    """Save the embeddings of the train (un-augmented and one augmented view), test and novel splits
    to ``path``; at an ``epoch`` of ``train.full_test_norms_epochs`` also split ``test_all``: the norms
    (h, z, p), labels and indices of every test image (``data.test_full``), without the vectors."""
    aug = SSLAugment(cfg.data.image_size, cfg.data.jitter_strength)
    g = torch.Generator().manual_seed(cfg.train.seed * 7 + 12345)
    splits = {"train": (data.train, None), "train_aug": (data.train, aug), "test": (data.test, None)}
    if data.novel is not None:
        splits["novel"] = (data.novel, None)
    if epoch in cfg.train.full_test_norms_epochs and data.test_full is not None:
        splits["test_all"] = (data.test_full, None)
    arrays: dict[str, np.ndarray] = {}
    for name, (s, a) in splits.items():
        out = embed(model, s.images, device, augment=a, generator=g)
        try:  # float16 where representable, float32 otherwise; non-finite values are refused
            for v in ("z", "p"):  # projector output z; predictor output p (SimSiam, BYOL)
                if v in out:
                    if name != "test_all":
                        arrays[f"{name}/{v}"] = float16_or_32(out[v].numpy())
                    elif not torch.isfinite(out[v]).all():
                        raise ValueError(f"non-finite {v}")
                    arrays[f"{name}/{v}_norm"] = out[v].norm(dim=1).numpy().astype(np.float32)
        except ValueError as exc:
            raise Diverged(f"{name} embeddings: {exc}") from None
        arrays[f"{name}/h_norm"] = out["h"].norm(dim=1).numpy().astype(np.float32)
        arrays[f"{name}/labels"] = s.labels.numpy().astype(np.int64)
        arrays[f"{name}/indices"] = np.asarray(s.indices, dtype=np.int64)
    save_npz_checked(path, arrays)
