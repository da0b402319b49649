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

The seeds of a simulation are trained side by side (:func:`train_imbalance_runs`: batched products,
each seed on its own data, init and batches); :func:`loglog_slope` is simulation (b)'s statistic.
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


def draw_partners(labels: torch.Tensor, generator=None) -> torch.Tensor:
    """One uniformly random same-class partner per anchor (``-1`` when the anchor has none).

    Args:
        labels: ``(B,)`` class ids, or ``(S, B)`` for ``S`` independent runs.
        generator: ``None``, one ``torch.Generator`` (``(B,)`` labels), or a sequence of ``S``
            generators, one per row of ``(S, B)`` labels (each draws its row's ``(B, B)`` scores, so a
            row gets the partners a ``(B,)`` call with that generator gets).

    Returns:
        int64 partner indices of the shape of ``labels``.
    """
    n = labels.shape[-1]
    same = (labels.unsqueeze(-1) == labels.unsqueeze(-2)) & ~torch.eye(n, dtype=torch.bool)
    if labels.dim() == 1:
        scores = torch.rand(n, n, generator=generator)
    else:
        gens = generator if isinstance(generator, (list, tuple)) else [generator] * labels.shape[0]
        scores = torch.stack([torch.rand(n, n, generator=g) for g in gens])
    scores = scores.masked_fill(~same, -1.0)
    return torch.where(same.any(-1), scores.argmax(-1), torch.full(labels.shape, -1))


def positive_mask(partners: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """The positives of each anchor: ``mask[i, partners[i]]`` (and, ``symmetric``, also
    ``mask[partners[i], i]``, as the released ``attract_pairs_infonce_loss``).

    Args:
        partners: ``(..., B)`` partner indices, ``-1`` for none.

    Returns:
        ``(..., B, B)`` bool.
    """
    has = partners >= 0
    mask = torch.zeros(*partners.shape, partners.shape[-1], dtype=torch.bool)
    mask.scatter_(-1, partners.clamp(min=0).unsqueeze(-1), has.unsqueeze(-1))  # one write per row
    return mask | mask.transpose(-1, -2) if symmetric else mask


def pairs_infonce(z: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised InfoNCE along given positives: ``L_i = -log(Σ_{p ∈ P(i)} e^{s_ip} / Σ_{m≠i} e^{s_im})``
    with ``s = cos / temperature``, averaged over the anchors with a positive (released loss without
    its ``+1e-8`` inside the log).

    Args:
        z: ``(..., B, dim)`` embeddings (leading axes: independent runs); mask: ``(..., B, B)`` bool
            positives (:func:`positive_mask`), ``B >= 2``.
        temperature: > 0 (validated by the caller's setup).

    Returns:
        ``(...)``: one loss per run (a scalar for ``(B, dim)``); 0 (with a zero gradient) for a run in
        which no anchor has a positive.
    """
    u = F.normalize(z, dim=-1)
    s = u @ u.transpose(-1, -2) / temperature
    eye = torch.eye(s.shape[-1], dtype=torch.bool)
    valid = mask.any(-1)
    # an anchor without a positive takes all columns (a finite value, dropped below: no NaN gradient)
    log_num = torch.logsumexp(s.masked_fill(~(mask | ~valid.unsqueeze(-1)), float("-inf")), dim=-1)
    log_den = torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=-1)
    per_anchor = torch.where(valid, log_den - log_num, torch.zeros_like(log_num))
    return per_anchor.sum(-1) / valid.sum(-1).clamp(min=1)


def class_mean_norms(z: torch.Tensor, labels: torch.Tensor, n_classes: int) -> np.ndarray:
    """Mean embedding norm of every class: ``(n_classes,)``, NaN for an empty class."""
    norms = z.norm(dim=1).double()
    total = torch.zeros(n_classes, dtype=torch.float64).index_add_(0, labels, norms)
    count = torch.bincount(labels, minlength=n_classes).double()
    return (total / count).numpy()  # 0/0 = NaN for an empty class


def loglog_slope(weights, values) -> np.ndarray:
    """Least-squares slope ``b`` of ``log(values) = a + b · log(weights)`` over the classes, one per
    row (simulation (b)'s statistic, issue 20; replaces a Spearman ρ over 4 classes).

    ``b`` is the elasticity of the value in the class weight: doubling a class's weight multiplies its
    value by ``2**b``; it is the same for every base of the logarithm. With ``values`` the classes' mean
    norms it measures "frequent classes get larger norms"; with the ratios trained / initial norm it
    measures the growth relative to each class's own initial norm (defined for every class, because a
    class mean norm is > 0, where a norm difference can be <= 0 and has no logarithm).

    Args:
        weights: ``(C,)`` class weights or sizes, finite and > 0, not all equal.
        values: ``(..., C)`` per-class values > 0 (a NaN, e.g. an empty class, gives a NaN slope).

    Returns:
        ``(...,)`` slopes (a 0-d array for a 1-d ``values``), dimensionless.

    Raises:
        ValueError: a weight that is not finite and > 0, weights all equal, ``values`` whose last
            axis is not ``C`` long, or a value <= 0 (its logarithm is undefined).
    """
    w, y = np.asarray(weights, dtype=float), np.asarray(values, dtype=float)
    if w.ndim != 1 or not (np.isfinite(w) & (w > 0)).all():
        raise ValueError(f"weights must be a 1-d array of finite numbers > 0, got {weights!r}")
    if np.ptp(w) == 0:
        raise ValueError(f"weights must not all be equal (no slope to fit), got {weights!r}")
    if y.ndim == 0 or y.shape[-1] != len(w):
        raise ValueError(f"values must have {len(w)} entries on their last axis (one per class), got shape {y.shape}")
    if (y <= 0).any():
        raise ValueError("values must be > 0 (log is undefined for a value <= 0)")
    x, ly = np.log(w) - np.log(w).mean(), np.log(y)
    return (ly - ly.mean(axis=-1, keepdims=True)) @ x / (x @ x)


@contextmanager
def _single_thread():
    """One torch thread (the MLP is tiny; on a shared 2-core machine threads only contend)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _stacked_mlp(setup: ImbalanceSetup, seeds: list[int]) -> list[torch.Tensor]:
    """The ``Linear-ReLU-Linear`` MLP of every seed (torch's default init, global RNG seeded with the
    seed and restored), stacked and transposed: ``W1ᵀ (S, data, hidden)``, ``b1 (S, hidden)``,
    ``W2ᵀ (S, hidden, embed)``, ``b2 (S, embed)``, contiguous leaf tensors with gradients."""
    per_seed = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            m = nn.Sequential(nn.Linear(setup.data_dim, setup.hidden_dim), nn.ReLU(),
                              nn.Linear(setup.hidden_dim, setup.embed_dim))
        per_seed.append([m[0].weight.t(), m[0].bias, m[2].weight.t(), m[2].bias])
    return [torch.stack([w[i].detach() for w in per_seed]).contiguous().requires_grad_() for i in range(4)]


def _mlp(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``x: (S, n, data_dim) -> (S, n, embed_dim)`` through the stacked MLPs of :func:`_stacked_mlp`."""
    w1, b1, w2, b2 = params
    h = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, w1))
    return torch.baddbmm(b2.unsqueeze(1), h, w2)


def train_imbalance_runs(setup: ImbalanceSetup, seeds, progress: Optional[bool] = False) -> list[dict[str, np.ndarray]]:
    """Runs of simulation (b), one per seed, trained side by side (batched matrix products; each run
    only sees its own data, init, batches and partners, so a run does not depend on the others): the
    MLP ``Linear-ReLU-Linear`` trained by plain SGD with :func:`pairs_infonce` (``setup.loss``), every
    epoch over shuffled batches (the last smaller).

    Run ``s`` is seeded by ``s`` (training data, init, batches, partners); simulation (c)'s balanced
    evaluation set uses the separate seed ``s + EVAL_SEED_OFFSET``. The global torch RNG is untouched.
    A step in which no anchor of a run has a partner leaves that run unchanged (released: zero loss).

    Args:
        setup: the constants; seeds: the seeds (ints); progress: tqdm over epochs (``None``: tqdm decides).

    Returns:
        per seed: ``class_norms`` ``(epochs+1, C)`` (row 0: initialisation); ``loss`` ``(epochs,)``;
        ``embeddings``/``initial_embeddings`` ``(N, embed_dim)`` of the training points after
        training / at initialisation; ``labels`` ``(N,)``; ``latent`` ``(N, latent_dim)``;
        ``eval_embeddings``/``eval_initial_embeddings``/``eval_labels``/``eval_latent``: the same
        on the balanced evaluation set.

    Raises:
        FloatingPointError: the loss of a run becomes non-finite (the message names the seed).
    """
    seeds = [int(s) for s in seeds]
    C, S, N = len(setup.class_weights), len(seeds), setup.n_samples
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    train = [spherical_classes(setup.class_weights, N, setup, setup.class_spread, g) for g in gens]
    held = [spherical_classes((1.0,) * C, N, setup, setup.eval_spread, torch.Generator().manual_seed(s + EVAL_SEED_OFFSET))
            for s in seeds]
    x, labels, xe = (torch.stack([t[i] for t in d]) for d, i in ((train, 0), (train, 2), (held, 0)))
    params = _stacked_mlp(setup, seeds)
    opt = torch.optim.SGD(params, lr=setup.lr)
    hist, losses = np.zeros((S, setup.epochs + 1, C)), np.zeros((S, setup.epochs))
    rows = torch.arange(S).unsqueeze(1)

    def class_norms(z: torch.Tensor) -> np.ndarray:
        return np.stack([class_mean_norms(z[i], labels[i], C) for i in range(S)])

    with torch.no_grad():
        init_emb, init_eval = _mlp(params, x), _mlp(params, xe)
    hist[:, 0] = class_norms(init_emb)
    for epoch in tqdm(range(setup.epochs), desc=f"imbalance, {S} seed(s)", leave=False,
                      disable=(None if progress is None else not progress)):
        perm = torch.stack([torch.randperm(N, generator=g) for g in gens])
        total, count = np.zeros(S), np.zeros(S)
        for start in range(0, N, setup.batch_size):
            idx = perm[:, start:start + setup.batch_size]
            mask = positive_mask(draw_partners(labels[rows, idx], gens), symmetric=setup.loss == "symmetric")
            if not bool(mask.any()):
                continue  # released: zero loss, a no-op step of plain SGD
            loss = pairs_infonce(_mlp(params, x[rows, idx]), mask, setup.temperature)
            bad = ~torch.isfinite(loss)
            if bool(bad.any()):
                raise FloatingPointError(f"non-finite loss in the imbalance simulation (seed "
                                         f"{seeds[int(bad.nonzero()[0, 0])]}, epoch {epoch + 1})")
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            has = mask.flatten(1).any(1).numpy()
            total += np.where(has, loss.detach().numpy(), 0.0) * idx.shape[1]
            count += has * idx.shape[1]
        losses[:, epoch] = total / np.maximum(count, 1)
        with torch.no_grad():
            hist[:, epoch + 1] = class_norms(_mlp(params, x))
    with torch.no_grad():
        emb, emb_eval = _mlp(params, x), _mlp(params, xe)
    return [{"class_norms": hist[i], "loss": losses[i], "embeddings": emb[i].numpy(),
             "initial_embeddings": init_emb[i].numpy(), "labels": labels[i].numpy(),
             "eval_embeddings": emb_eval[i].numpy(), "eval_initial_embeddings": init_eval[i].numpy(),
             "eval_labels": held[i][2].numpy(), "latent": train[i][1].numpy(), "eval_latent": held[i][1].numpy()}
            for i in range(S)]


def train_imbalance_run(setup: ImbalanceSetup, seed: int, progress: Optional[bool] = False) -> dict[str, np.ndarray]:
    """One run of simulation (b): :func:`train_imbalance_runs` of the single ``seed`` (same returns
    and errors)."""
    return train_imbalance_runs(setup, [seed], progress)[0]


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
    """All ``setup.seeds`` runs of :func:`train_imbalance_runs`, cached on ``setup`` (so the imbalance
    and density artifacts of one process train once), on one torch thread."""
    with _single_thread():
        runs = train_imbalance_runs(setup, range(setup.seeds), progress)
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
