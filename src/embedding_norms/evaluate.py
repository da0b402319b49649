"""Evaluation: embeddings of a dataset, weighted kNN accuracy, linear probe, norm statistics."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .data.augment import SSLAugment, to_float
from .models import SSLModel


@torch.no_grad()
def embed(model: SSLModel, images: torch.Tensor, device: torch.device, batch_size: int = 512,
          augment: Optional[SSLAugment] = None, generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """Outputs of a model on a set of images, in eval mode (BatchNorm uses running statistics).

    Args:
        model: trained model (its train/eval mode is restored afterwards).
        images: uint8 ``(N, 3, H, W)``.
        augment: if given, embed one augmented view per image (with ``generator``), else the
            un-augmented view.

    Returns:
        dict with float32 CPU tensors: representation ``h`` ``(N, d_h)``, projector output ``z``
        ``(N, d_z)`` and, for methods with a predictor (SimSiam, BYOL), predictor output ``p``
        ``(N, d_z)``. The loss normalises ``z`` (SimCLR) or ``p`` (SimSiam, BYOL).
    """
    was_training = model.training
    model.eval()
    out: dict[str, list[torch.Tensor]] = {"h": [], "z": []}
    if model.predictor is not None:
        out["p"] = []
    try:
        for i in range(0, len(images), batch_size):
            chunk = images[i:i + batch_size]
            x = augment(chunk, generator, device) if augment is not None else to_float(chunk.to(device))
            o = model(x)
            out["h"].append(o.h.float().cpu())
            out["z"].append(o.z.float().cpu())
            if "p" in out:
                out["p"].append(o.p.float().cpu())
    finally:
        model.train(was_training)
    return {k: torch.cat(v) if v else torch.empty(0) for k, v in out.items()}


#: BatchNorm layer types whose running statistics :func:`recalibrated_batchnorm` sets.
_BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


@contextlib.contextmanager
@torch.no_grad()
def recalibrated_batchnorm(model: SSLModel, images: torch.Tensor, device: torch.device, batch_size: int,
                           augment: Optional[SSLAugment] = None, generator: Optional[torch.Generator] = None,
                           max_batches: int = 50) -> Iterator[None]:
    """Inside the ``with`` block, every BatchNorm of the online network (backbone, projector,
    predictor) holds running statistics measured on ``images``; on exit the previous buffers are
    restored, so training and later evaluations are exactly as without the block.

    Why: an untrained network's running statistics are the initial (mean 0, variance 1), so in
    eval mode every BatchNorm is an identity and the "epoch 0" network evaluated by :func:`embed`
    is one that never exists in training (issue 19). Here each layer's statistics are the
    cumulative average (``momentum=None``) over up to ``max_batches`` train-mode forward passes of
    ``batch_size`` images (one augmented view each when ``augment`` is given, as in training),
    without gradients. Evaluated on the same single batch, the eval-mode outputs then equal the
    train-mode outputs up to the unbiased/biased variance factor ``n / (n - 1)`` per layer.

    Args:
        model: the network (its train/eval mode is restored on exit; weights are never changed).
        images: uint8 ``(N, 3, H, W)`` training images, used in order (shuffle beforehand).
        batch_size: images per forward pass (the training micro-batch, so that batch statistics
            are those training sees).
        augment, generator: the training augmentation and its generator (None: un-augmented).
        max_batches: cap on forward passes (``paper`` scale: 50 x 128 images).

    Raises:
        ValueError: ``batch_size < 2`` (batch statistics need two images) or no images.
    """
    if batch_size < 2 or len(images) < 2:
        raise ValueError(f"BatchNorm recalibration needs batches of >= 2 images, got batch_size={batch_size} "
                         f"and {len(images)} images")
    online = [m for name, m in model.named_modules() if isinstance(m, _BATCHNORMS) and not name.startswith("target")]
    saved = [(m, m.momentum, {k: b.clone() for k, b in m.named_buffers()}) for m in online]
    was_training = model.training
    try:
        for m in online:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
        model.train()
        for i in range(0, min(len(images), max_batches * batch_size), batch_size):
            chunk = images[i:i + batch_size]
            if len(chunk) < 2:
                break
            x = augment(chunk, generator, device) if augment is not None else to_float(chunk.to(device))
            model(x)
        model.train(was_training)
        yield
    finally:
        for m, momentum, buffers in saved:
            m.momentum = momentum
            for k, b in m.named_buffers():
                b.copy_(buffers[k])
        model.train(was_training)


def knn_predict(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted kNN classifier of InstDisc (Wu et al. 2018), as in the released ``knn_monitor``.

    Cosine similarities ``s`` to the ``k`` nearest bank vectors vote for their labels with
    weight ``exp(s / temperature)``; the prediction is the class with the largest total.

    Args:
        query: ``(Q, d)`` features (normalised here).
        bank: ``(N, d)`` memory-bank features (normalised here).
        bank_labels: ``(N,)`` int64.
        k: neighbours (capped at ``N``).

    Returns:
        ``(Q,)`` int64 predicted labels.
    """
    q = F.normalize(query.float(), dim=1)
    b = F.normalize(bank.float(), dim=1)
    k = min(k, len(b))
    preds = []
    for i in range(0, len(q), chunk):
        sims = q[i:i + chunk] @ b.t()
        w, idx = sims.topk(k, dim=1)
        lab = bank_labels[idx]
        scores = torch.zeros(len(lab), num_classes, dtype=torch.float32, device=w.device)
        scores.scatter_add_(1, lab, (w / temperature).exp())
        preds.append(scores.argmax(1))
    return torch.cat(preds)


def scaled_knn_k(k: int, bank_size: int, full_bank: int = 50_000, minimum: int = 10) -> int:
    """``k`` of the weighted kNN for a bank of ``bank_size`` images that keeps the released
    monitor's share of neighbours (``k`` of a ``full_bank``-image bank): ``max(minimum,
    round(k * bank_size / full_bank))``, capped at ``bank_size``. 200 of 50 000 -> 12 of 3000."""
    return min(bank_size, max(minimum, round(k * bank_size / full_bank)))


def knn_accuracy(query: torch.Tensor, query_labels: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                 num_classes: int, k: int = 200, temperature: float = 0.1) -> float:
    """Weighted kNN accuracy in percent (see :func:`knn_predict`)."""
    pred = knn_predict(query, bank, bank_labels, num_classes, k, temperature)
    return float((pred == query_labels).float().mean() * 100)


def linear_probe(model: SSLModel, train_images: torch.Tensor, train_labels: torch.Tensor,
                 test_images: torch.Tensor, test_labels: torch.Tensor, device: torch.device,
                 max_iter: int = 100, seed: int = 0) -> dict[str, float]:
    """Linear probe on the frozen backbone representation ``h``.

    Features come from :func:`embed` (eval mode, no gradient), so neither the weights nor
    the BatchNorm statistics of the backbone change (the released probe leaves BatchNorm in
    training mode; see REPORT.md). A multinomial logistic regression (scikit-learn, lbfgs) is
    fit on standardised train features.

    Returns:
        ``{"train_acc": %, "test_acc": %}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    htr = embed(model, train_images, device)["h"].numpy()
    hte = embed(model, test_images, device)["h"].numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    clf.fit(htr, train_labels.numpy())
    return {"train_acc": float(clf.score(htr, train_labels.numpy()) * 100),
            "test_acc": float(clf.score(hte, test_labels.numpy()) * 100)}


#: Released linear-probe settings per method: (SGD learning rate, epochs) (PAPER.md; lin_evaluator.py).
RELEASED_PROBE = {"simclr": (0.1, 2), "simsiam": (0.5, 2), "byol": (0.5, 8)}


def linear_probe_released(model: SSLModel, train_images: torch.Tensor, train_labels: torch.Tensor,
                          test_images: torch.Tensor, test_labels: torch.Tensor, device: torch.device,
                          lr: float, epochs: int, batch_size: int = 256, momentum: float = 0.9,
                          seed: int = 0) -> dict[str, float]:
    """The released linear probe (``CLA/training/lin_evaluator.py``): a linear layer on the
    backbone representation ``h``, trained with SGD (momentum, no weight decay) on un-augmented
    training images with the backbone in *training* mode (its weights are not optimised, but its
    BatchNorm running statistics move, as released); tested in eval mode after every epoch; the
    reported accuracy is the test accuracy of the epoch with the lowest training loss. The
    model passed in is not changed (a copy of the backbone is used).

    Args:
        train_images, test_images: uint8 ``(N, 3, H, W)``; labels ``(N,)`` int64.
        lr, epochs: SGD learning rate and epochs (:data:`RELEASED_PROBE`).

    Returns:
        ``{"train_acc": %, "test_acc": %, "test_acc_last": %, "best_epoch": int}``.

    Raises:
        ValueError: ``epochs < 1`` or ``lr <= 0``.
    """
    import copy

    if epochs < 1 or lr <= 0:
        raise ValueError(f"the released probe needs epochs >= 1 and lr > 0, got {epochs}, {lr}")
    backbone = copy.deepcopy(model.backbone).to(device)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    with torch.no_grad():
        dim = backbone(to_float(train_images[:2].to(device))).shape[1]
    head = torch.nn.Linear(dim, num_classes).to(device)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    best = (float("inf"), 0.0, 0.0, 0)
    test_acc = 0.0
    for epoch in range(1, epochs + 1):
        backbone.train()  # released: the classifier wrapper is put in train mode, BatchNorm included
        order = torch.randperm(len(train_images), generator=g)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = to_float(train_images[idx].to(device)), train_labels[idx].to(device)
            with torch.no_grad():
                h = backbone(x)
            logits = head(h)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        backbone.eval()
        with torch.no_grad():
            preds = torch.cat([head(backbone(to_float(test_images[i:i + 512].to(device)))).argmax(1).cpu()
                               for i in range(0, len(test_images), 512)])
        test_acc = float((preds == test_labels).float().mean() * 100)
        train_loss = loss_sum / len(order)
        if train_loss < best[0]:
            best = (train_loss, 100.0 * correct / len(order), test_acc, epoch)
    return {"train_acc": best[1], "test_acc": best[2], "test_acc_last": test_acc, "best_epoch": best[3]}


def norm_summary(norms: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Mean, median, 10 % and 90 % quantiles of a vector of norms."""
    x = np.asarray(norms, dtype=np.float64)
    return {"mean": float(x.mean()), "median": float(np.median(x)),
            "q10": float(np.quantile(x, 0.1)), "q90": float(np.quantile(x, 0.9))}
