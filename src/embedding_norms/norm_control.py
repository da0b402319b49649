"""The paper's two ways of controlling embedding norms (Section 4).

* :class:`GradScale` (Algorithm 1): an identity layer placed right before the normalisation
  ``z / ||z||`` whose backward pass multiplies the gradient of every row by ``||z||**p``.
  By Prop. 3.1 the gradient of a normalised loss w.r.t. ``z`` has size ``∝ 1/||z||``; with
  ``p = 1`` this dependence is cancelled. ``p = 0`` is plain training.
* :func:`cut_initialization`: divide every parameter of a freshly initialised network by a
  constant ``c > 1`` (weights and biases, BatchNorm affine parameters, BYOL's target), so
  training starts with small embedding norms and therefore large effective steps; or only the
  parameters under given name prefixes (the scopes of :data:`embedding_norms.models.CUT_SCOPES`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


class _GradScaleFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, power: float) -> torch.Tensor:  # noqa: D401
        """Identity (the input is saved for the backward pass)."""
        ctx.save_for_backward(z)
        ctx.power = power
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        """Incoming gradient of each row times ``||z||^p`` (``p`` has no gradient)."""
        (z,) = ctx.saved_tensors
        norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
        return grad * norm.pow(ctx.power), None


def gradscale(z: torch.Tensor, power: float) -> torch.Tensor:
    """GradScale (Algorithm 1): identity forward; backward multiplies row ``i``'s gradient by ``||z_i||**p``.

    Args:
        z: embeddings ``(batch, dim)`` (before normalisation).
        power: ``p``; 0 returns ``z`` unchanged (no autograd node).

    Returns:
        ``z`` (same values), whose gradient is rescaled row-wise.
    """
    if power == 0:
        return z
    return _GradScaleFn.apply(z, float(power))


@torch.no_grad()
def cut_initialization(module: nn.Module, constant: float, prefixes: Optional[Sequence[str]] = None) -> list[str]:
    """Divide parameters of ``module`` by ``constant`` in place (cut-initialization, Section 4.1).

    Buffers (BatchNorm running statistics) are not parameters and are left alone, as in the
    released code (``cut_weights``). ``constant = 1`` does nothing.

    Args:
        module: the freshly initialised network.
        constant: ``c``.
        prefixes: cut only the parameters whose name (``module.named_parameters()``) starts with
            one of these prefixes followed by ``.`` (e.g. ``("projector", "target.projector")``);
            None = every parameter, as released.

    Returns:
        The names of the parameters divided (empty when ``constant = 1``).

    Raises:
        ValueError: ``constant <= 0``, or a prefix that names no parameter (a typo would
            otherwise cut nothing silently).
    """
    if constant <= 0:
        raise ValueError(f"cut constant must be > 0, got {constant}")
    named = list(module.named_parameters())
    if prefixes is not None:
        names = [n for n, _ in named]
        empty = [pre for pre in prefixes if not any(n.startswith(pre + ".") for n in names)]
        if empty:
            raise ValueError(f"cut-initialization prefixes {empty} name no parameter of {type(module).__name__}")
        named = [(n, p) for n, p in named if any(n.startswith(pre + ".") for pre in prefixes)]
    if constant == 1:
        return []
    for _, p in named:
        p.div_(constant)
    return [n for n, _ in named]
