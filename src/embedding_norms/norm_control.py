"""The paper's two ways of controlling embedding norms (Section 4).

* :class:`GradScale` (Algorithm 1): an identity layer placed right before the normalisation
  ``z / ||z||`` whose backward pass multiplies the gradient of every row by ``||z||**p``.
  By Prop. 3.1 the gradient of a normalised loss w.r.t. ``z`` has size ``∝ 1/||z||``; with
  ``p = 1`` this dependence is cancelled. ``p = 0`` is plain training.
* :func:`cut_initialization`: divide every parameter of a freshly initialised network by a
  constant ``c > 1`` (weights and biases, BatchNorm affine parameters, BYOL's target), so
  training starts with small embedding norms and therefore large effective steps.
"""

from __future__ import annotations

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
def cut_initialization(module: nn.Module, constant: float) -> None:
    """Divide every parameter of ``module`` by ``constant`` in place (cut-initialization).

    Buffers (BatchNorm running statistics) are not parameters and are left alone, as in the
    released code (``cut_weights``). ``constant = 1`` does nothing.

    Raises:
        ValueError: ``constant <= 0``.
    """
    if constant <= 0:
        raise ValueError(f"cut constant must be > 0, got {constant}")
    if constant == 1:
        return
    for p in module.parameters():
        p.div_(constant)
