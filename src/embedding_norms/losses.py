"""Losses as pure functions of embeddings (Section 2 of the paper).

Every loss normalises its inputs, so it sees ``z`` only through ``z / ||z||``: Prop. 3.1
(gradient orthogonal to ``z``, size ``∝ 1/||z||``) applies to all of them. Inputs are the
raw embeddings ``(batch, dim)``; GradScale (:mod:`embedding_norms.norm_control`) is applied
by the caller before these functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attraction(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Attraction part of InfoNCE: ``-mean_i cos(z1_i, z2_i) / t``.

    Args:
        z1, z2: embeddings of the two views, ``(batch, dim)``; row ``i`` of each is a positive pair.
        temperature: ``t``.

    Returns:
        scalar loss.
    """
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return -(a * b).sum(1).mean() / temperature


def repulsion(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Repulsion part of the released InfoNCE: ``mean_i log sum_{j != i} exp(cos(z1_i, z2_j) / t)``.

    One direction (views 1 -> 2); the positive pair is excluded from the sum (the released
    code sets the diagonal to -1e5 before the exponential; here it is masked).

    Args:
        z1, z2: ``(batch, dim)``.

    Returns:
        scalar loss.
    """
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    sims = a @ b.t() / temperature
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    return torch.logsumexp(sims.masked_fill(eye, float("-inf")), dim=1).mean()


def infonce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """InfoNCE as in the released code: ``attraction + repulsion`` (positive not in the denominator).

    ``L = -1/B sum_i [ s_ii - log sum_{j != i} exp(s_ij) ]`` with ``s_ij = cos(z1_i, z2_j) / t``.

    Args:
        z1, z2: ``(batch, dim)`` embeddings of the two views.
        temperature: ``t`` (0.5 for SimCLR in the released code).

    Returns:
        scalar loss.
    """
    return attraction(z1, z2, temperature) + repulsion(z1, z2, temperature)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Standard symmetric NT-Xent of SimCLR (Chen et al. 2020).

    For the ``2B`` embeddings ``u = [z1; z2]``, anchor ``k`` with positive ``k ± B``:
    ``L = 1/(2B) sum_k -log( exp(s_k,pos) / sum_{m != k} exp(s_km) )``, ``s = cos / t``;
    the positive is part of the denominator, both directions count.

    Args:
        z1, z2: ``(batch, dim)``.

    Returns:
        scalar loss.
    """
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sims = u @ u.t() / temperature
    sims = sims.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    return F.cross_entropy(sims, targets)


def negative_cosine(p1: torch.Tensor, z1: torch.Tensor, p2: torch.Tensor, z2: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """Symmetric negative cosine of SimSiam / BYOL with a stop-gradient on the targets.

    ``L = -1/2 [cos(p1, sg(z2)) + cos(p2, sg(z1))] / t`` averaged over the batch; ``p`` are
    predictor outputs, ``z`` projector (SimSiam) or EMA-target (BYOL) outputs.

    Args:
        p1, p2: predictions ``(batch, dim)``.
        z1, z2: targets ``(batch, dim)``; detached here (stop-gradient).
        temperature: divisor (1.0 in the released code).

    Returns:
        scalar loss.
    """
    return 0.5 * (attraction(p1, z2.detach(), temperature) + attraction(p2, z1.detach(), temperature))


def supervised_infonce(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5,
                       partner: str = "all", generator: torch.Generator | None = None) -> torch.Tensor:
    """Supervised InfoNCE: same-class samples attract, all others repel (paper's simulations).

    ``partner="all"``: for anchor ``i`` with same-class set ``P(i)`` (excluding ``i``),
    ``L_i = -1/|P(i)| sum_{p in P(i)} [ s_ip - log sum_{m != i} exp(s_im) ]`` (SupCon "out").
    ``partner="random"``: one uniformly random same-class partner ``p(i)`` per anchor,
    ``L_i = -[ s_ip(i) - log sum_{m != i} exp(s_im) ]`` (the paper's simulation).
    Anchors without a same-class partner are skipped.

    Args:
        z: embeddings ``(batch, dim)``.
        labels: ``(batch,)`` int class ids.
        temperature: ``t``.
        partner: ``"all"`` or ``"random"``.
        generator: RNG for the random partner.

    Returns:
        scalar loss (mean over anchors that have a partner).

    Raises:
        ValueError: unknown ``partner`` or no anchor has a same-class partner.
    """
    if partner not in ("all", "random"):
        raise ValueError(f"partner must be 'all' or 'random', got {partner!r}")
    u = F.normalize(z, dim=1)
    n = len(u)
    sims = u @ u.t() / temperature
    eye = torch.eye(n, dtype=torch.bool, device=u.device)
    log_denom = torch.logsumexp(sims.masked_fill(eye, float("-inf")), dim=1)
    same = (labels.view(-1, 1) == labels.view(1, -1)) & ~eye
    has = same.any(1)
    if not bool(has.any()):
        raise ValueError("no anchor has a same-class partner in this batch")
    if partner == "all":
        pos = (sims * same).sum(1) / same.sum(1).clamp(min=1)
    else:
        scores = torch.rand(n, n, generator=generator).to(u.device).masked_fill(~same, -1.0)
        pos = sims.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)
    return -(pos - log_denom)[has].mean()


CONTRASTIVE_LOSSES = {"infonce": infonce, "nt_xent": nt_xent, "attraction": attraction, "repulsion": repulsion}
