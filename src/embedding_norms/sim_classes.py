"""Simulations (b) and (c) of Section 3: an MLP trained with a supervised InfoNCE loss on
class-imbalanced points of the latent sphere; per-class norms over training (b) and the norms'
relation to the local density (c).

Follows the released ``Simulations.ipynb`` (cells 4-8) where the paper is silent:

* data (``SphericalDataset``): class of each point drawn with probabilities ``∝ class_weights``,
  ``u = normalize(μ_c + spread · ε)`` on ``S^{latent_dim-1}``, observed as ``x = input_scale · A u``
  with one random Gaussian ``A`` (:func:`spherical_classes`);
* loss (``attract_pairs_infonce_loss``): every anchor draws one random same-class partner and the
  relation is made symmetric, so an anchor averages about two positives (:func:`pairs_infonce`,
  ``symmetric=True``); the one-partner loss is the option ``loss="one_partner"``;
* simulation (c) evaluates the trained model on a *new balanced* data set (spread 0.1, new centres
  and observation matrix), Euclidean distance of the L2-normalised embeddings to the 10th neighbour
  (:meth:`ImbalanceResult.evaluation`); the model's own training points with cosine distance are
  the option ``"own"``.

:class:`ImbalanceSetup` is validated once when it is constructed.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .sim_theory import check_count, check_positive

#: Losses of simulation (b): the released symmetric-partner loss and the one-partner variant.
LOSSES = ("symmetric", "one_partner")
#: Offset of the seed of simulation (c)'s evaluation set (a stream separate from training).
EVAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class ImbalanceSetup:
    """Constants of simulations (b)/(c) (PAPER.md "Simulation (b)"; released code where silent).

    Attributes:
        class_weights: sampling weights of the latent classes (paper 1:2:4:8), each > 0.
        n_samples: points of the training set (released 2000 = 4 × 500); also the size of the
            balanced evaluation set of simulation (c).
        latent_dim, data_dim: latent sphere dimension (10) and observation dimension (64).
        input_scale: factor of the random Gaussian map (×10).
        class_spread: per-coordinate std around each class centre (released 1.0 for training).
        eval_spread: the same for simulation (c)'s balanced evaluation set (released 0.1).
        hidden_dim, embed_dim: MLP 64-hidden-embed (64, 10).
        temperature: InfoNCE temperature (released 1.0).
        loss: ``"symmetric"`` (released) or ``"one_partner"`` (see :func:`pairs_infonce`).
        lr, batch_size, epochs: plain SGD (0.01, 128, 100).
        seeds: runs (paper 5); run ``s`` seeds data, init, batches and partners with ``s``.

    Raises:
        ValueError: a class weight <= 0, a non-positive size, learning rate, temperature or
            scale, a negative spread or an unknown loss (the message names the field).
    """

    class_weights: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    n_samples: int = 2000
    latent_dim: int = 10
    data_dim: int = 64
    input_scale: float = 10.0
    class_spread: float = 1.0
    eval_spread: float = 0.1
    hidden_dim: int = 64
    embed_dim: int = 10
    temperature: float = 1.0
    loss: str = "symmetric"
    lr: float = 0.01
    batch_size: int = 128
    epochs: int = 100
    seeds: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if len(self.class_weights) < 2:
            raise ValueError(f"class_weights needs at least 2 classes, got {self.class_weights!r}")
        for i, w in enumerate(self.class_weights):
            if not (math.isfinite(w) and w > 0):
                raise ValueError(f"class_weights[{i}] must be > 0 (valid range: (0, inf)), got {w!r}")
        for name in ("n_samples", "data_dim", "hidden_dim", "embed_dim", "epochs", "seeds"):
            check_count(name, getattr(self, name))
        check_count("latent_dim", self.latent_dim, 2)   # a sphere needs 2 dimensions
        check_count("batch_size", self.batch_size, 2)   # InfoNCE needs a partner
        if self.n_samples < 2 * len(self.class_weights):
            raise ValueError(f"n_samples must be >= 2 per class ({2 * len(self.class_weights)}), got {self.n_samples}")
        for name in ("input_scale", "temperature", "lr"):
            check_positive(name, getattr(self, name))
        for name in ("class_spread", "eval_spread"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be >= 0 (valid range: [0, inf)), got {v!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")

    @classmethod
    def of(cls, params) -> "ImbalanceSetup":
        """The setup held by ``params`` (any object with these attribute names, e.g. an artifact's
        Params that extends this class): a plain, hashable :class:`ImbalanceSetup` for the cache."""
        return cls(**{f.name: getattr(params, f.name) for f in fields(cls)})


def spherical_classes(weights, n: int, setup: ImbalanceSetup, spread: float,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The released ``SphericalDataset``: ``n`` points of ``len(weights)`` classes on the latent sphere.

    The class of each point is drawn with probabilities ``weights / sum(weights)``; centres ``μ_c``
    are uniform on ``S^{latent_dim-1}``; a point is ``u = normalize(μ_c + spread · ε)``,
    ``ε ~ N(0, I)``; its observation ``x = input_scale · A u`` with ``A_ij ~ N(0, 1)``
    (``data_dim × latent_dim``), shared by all points. Points are sorted by class. Sizes come
    from the (validated) ``setup``.

    Returns:
        ``x``: ``(n, data_dim)``; ``u``: ``(n, latent_dim)``; ``labels``: ``(n,)`` int64.
    """
    C, k = len(weights), setup.latent_dim
    mu = F.normalize(torch.randn(C, k, generator=generator), dim=1)
    w = torch.as_tensor(weights, dtype=torch.float64)
    labels = torch.multinomial(w / w.sum(), n, replacement=True, generator=generator).sort().values
    u = F.normalize(mu[labels] + spread * torch.randn(n, k, generator=generator), dim=1)
    A = torch.randn(setup.data_dim, k, generator=generator)
    return setup.input_scale * u @ A.t(), u, labels


def draw_partners(labels: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One uniformly random same-class partner per anchor (``-1`` when the anchor has none).

    Args:
        labels: ``(B,)`` class ids.

    Returns:
        ``(B,)`` int64 partner indices.
    """
    n = len(labels)
    same = (labels.view(-1, 1) == labels.view(1, -1)) & ~torch.eye(n, dtype=torch.bool)
    scores = torch.rand(n, n, generator=generator).masked_fill(~same, -1.0)
    return torch.where(same.any(1), scores.argmax(1), torch.full((n,), -1))


def positive_mask(partners: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """The positives of each anchor: ``mask[i, partners[i]]`` (and, ``symmetric``, also
    ``mask[partners[i], i]``, as the released ``attract_pairs_infonce_loss``).

    Args:
        partners: ``(B,)`` partner indices, ``-1`` for none.

    Returns:
        ``(B, B)`` bool.
    """
    n = len(partners)
    mask = torch.zeros(n, n, dtype=torch.bool)
    has = partners >= 0
    mask[torch.arange(n)[has], partners[has]] = True
    return mask | mask.t() if symmetric else mask


def pairs_infonce(z: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised InfoNCE along given positives: ``L_i = -log(Σ_{p ∈ P(i)} e^{s_ip} / Σ_{m≠i} e^{s_im})``
    with ``s = cos / temperature``, averaged over the anchors with a positive (released loss without
    its ``+1e-8`` inside the log).

    Args:
        z: ``(B, dim)`` embeddings; mask: ``(B, B)`` bool positives (:func:`positive_mask`).
        temperature: > 0 (validated by the caller's setup).

    Returns:
        scalar; 0 (with gradient) when no anchor has a positive.
    """
    u = F.normalize(z, dim=1)
    s = u @ u.t() / temperature
    eye = torch.eye(len(u), dtype=torch.bool)
    valid = mask.any(1)
    if not bool(valid.any()):
        return z.sum() * 0.0
    log_num = torch.logsumexp(s.masked_fill(~mask, float("-inf")), dim=1)
    log_den = torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1)
    return -(log_num - log_den)[valid].mean()


def class_mean_norms(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> np.ndarray:
    """Mean embedding norm of every class: ``(n_classes,)``, NaN for an empty class."""
    norms = z.norm(dim=1).double()
    total = torch.zeros(n_classes, dtype=torch.float64).index_add_(0, labels, norms)
    count = torch.bincount(labels, minlength=n_classes).double()
    return (total / count).numpy()  # 0/0 = NaN for an empty class


@contextmanager
def _single_thread():
    """One torch thread (the MLP is tiny; on a shared 2-core machine threads only contend)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def train_imbalance_run(setup: ImbalanceSetup, seed: int, progress: Optional[bool] = False) -> dict[str, np.ndarray]:
    """One run of simulation (b): the MLP ``Linear-ReLU-Linear`` trained by plain SGD with
    :func:`pairs_infonce` (``setup.loss``), every epoch over shuffled batches (the last smaller).

    Seeded by ``seed`` (training data, init, batches, partners); simulation (c)'s balanced
    evaluation set uses the separate seed ``seed + EVAL_SEED_OFFSET``. The global torch RNG is untouched.

    Returns:
        ``class_norms`` ``(epochs+1, C)`` (row 0: initialisation); ``loss`` ``(epochs,)``;
        ``embeddings``/``initial_embeddings`` ``(N, embed_dim)`` of the training points after
        training / at initialisation; ``labels`` ``(N,)``; ``latent`` ``(N, latent_dim)``;
        ``eval_embeddings``/``eval_initial_embeddings``/``eval_labels``/``eval_latent``: the same
        on the balanced evaluation set.

    Raises:
        FloatingPointError: the loss becomes non-finite.
    """
    C = len(setup.class_weights)
    g = torch.Generator().manual_seed(int(seed))
    x, u, labels = spherical_classes(setup.class_weights, setup.n_samples, setup, setup.class_spread, g)
    xe, ue, le = spherical_classes((1.0,) * C, setup.n_samples, setup, setup.eval_spread,
                                  torch.Generator().manual_seed(int(seed) + EVAL_SEED_OFFSET))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = nn.Sequential(nn.Linear(setup.data_dim, setup.hidden_dim), nn.ReLU(),
                              nn.Linear(setup.hidden_dim, setup.embed_dim))
    opt = torch.optim.SGD(model.parameters(), lr=setup.lr)
    hist, losses = np.zeros((setup.epochs + 1, C)), np.zeros(setup.epochs)
    with torch.no_grad():
        init_emb, init_eval = model(x), model(xe)
    hist[0] = class_mean_norms(init_emb, labels, C)
    N = len(labels)
    for epoch in tqdm(range(setup.epochs), desc=f"imbalance seed {seed}", leave=False,
                      disable=(None if progress is None else not progress)):
        perm = torch.randperm(N, generator=g)
        total, count = 0.0, 0
        for start in range(0, N, setup.batch_size):
            idx = perm[start:start + setup.batch_size]
            mask = positive_mask(draw_partners(labels[idx], g), symmetric=setup.loss == "symmetric")
            if not bool(mask.any()):
                continue  # released: zero loss, a no-op step of plain SGD
            loss = pairs_infonce(model(x[idx]), mask, setup.temperature)
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(f"non-finite loss in the imbalance simulation (seed {seed}, epoch {epoch + 1})")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses[epoch] = total / max(count, 1)
        with torch.no_grad():
            hist[epoch + 1] = class_mean_norms(model(x), labels, C)
    with torch.no_grad():
        emb, emb_eval = model(x), model(xe)
    return {"class_norms": hist, "loss": losses, "embeddings": emb.numpy(), "initial_embeddings": init_emb.numpy(),
            "labels": labels.numpy(), "eval_embeddings": emb_eval.numpy(),
            "eval_initial_embeddings": init_eval.numpy(), "eval_labels": le.numpy(),
            "latent": u.numpy(), "eval_latent": ue.numpy()}


def _readonly(a) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ImbalanceResult:
    """All runs of simulation (b) (read-only arrays).

    Attributes:
        setup: the constants.
        class_norms: ``(seeds, epochs+1, C)`` mean norm per class after each epoch.
        loss: ``(seeds, epochs)`` mean training loss per epoch.
        runs: per seed the dict of :func:`train_imbalance_run` (arrays read-only).
    """

    setup: ImbalanceSetup
    class_norms: np.ndarray
    loss: np.ndarray
    runs: tuple[dict, ...] = field(repr=False)

    def history(self) -> pd.DataFrame:
        """Long table ``seed, epoch, class, weight, mean_norm`` (a fresh copy)."""
        S, E, C = self.class_norms.shape
        s, e, c = np.meshgrid(np.arange(S), np.arange(E), np.arange(C), indexing="ij")
        return pd.DataFrame({"seed": s.ravel(), "epoch": e.ravel(), "class": c.ravel(),
                             "weight": np.asarray(self.setup.class_weights)[c.ravel()],
                             "mean_norm": self.class_norms.ravel()})

    def evaluation(self, seed: int, evaluation: str = "released") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Simulation (c)'s point set of run ``seed``: ``(trained, untrained, labels)`` embeddings.

        ``"released"``: the balanced evaluation set (new centres and observation matrix, spread
        ``setup.eval_spread``); ``"own"``: the run's own training points.

        Raises:
            ValueError: an unknown ``evaluation``.
        """
        r = self.runs[seed]
        if evaluation == "released":
            return r["eval_embeddings"], r["eval_initial_embeddings"], r["eval_labels"]
        if evaluation == "own":
            return r["embeddings"], r["initial_embeddings"], r["labels"]
        raise ValueError(f"evaluation must be 'released' or 'own', got {evaluation!r}")


@lru_cache(maxsize=4)
def imbalance_simulation(setup: ImbalanceSetup, progress: Optional[bool] = None) -> ImbalanceResult:
    """All ``setup.seeds`` runs of :func:`train_imbalance_run`, cached on ``setup`` (so the imbalance
    and density artifacts of one process train once), on one torch thread."""
    with _single_thread():
        runs = [train_imbalance_run(setup, s, progress) for s in range(setup.seeds)]
    return ImbalanceResult(setup=setup, class_norms=_readonly(np.stack([r["class_norms"] for r in runs])),
                           loss=_readonly(np.stack([r["loss"] for r in runs])),
                           runs=tuple({k: _readonly(v) for k, v in r.items()} for r in runs))


def knn_distance(embeddings: np.ndarray, k: int = 10, metric: str = "euclidean_normalized") -> np.ndarray:
    """Distance of every point to its ``k``-th nearest neighbour (itself excluded; simulation (c)).

    ``"euclidean_normalized"`` (released): Euclidean distance between L2-normalised embeddings,
    ``sqrt(2 - 2 cos)``; ``"cosine"``: ``1 - cos``. Both rank neighbours alike.

    Args:
        embeddings: ``(N, dim)``, rows of norm > 0.
        k: neighbour rank, 1 <= k < N (paper 10).
        metric: see above.

    Returns:
        ``(N,)``.

    Raises:
        ValueError: invalid ``k`` or ``metric``, or a zero row.
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(embeddings, dtype=float)
    check_count("k", k)
    if k >= len(X):
        raise ValueError(f"k must be < the number of points ({len(X)}), got {k}")
    if metric not in ("euclidean_normalized", "cosine"):
        raise ValueError(f"metric must be 'euclidean_normalized' or 'cosine', got {metric!r}")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("an embedding of norm 0 has no direction: its normalised distance is undefined")
    if metric == "euclidean_normalized":
        X, sk_metric = X / norms, "euclidean"
    else:
        sk_metric = "cosine"
    dist, idx = NearestNeighbors(n_neighbors=k + 1, metric=sk_metric).fit(X).kneighbors(X)
    own = idx == np.arange(len(X))[:, None]   # drop the point itself (robust to exact duplicates)
    keep = np.where(own.any(1)[:, None], ~own, np.arange(k + 1)[None, :] < k)
    return dist[keep].reshape(len(X), k)[:, k - 1]
