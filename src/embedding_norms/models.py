"""Backbones, projector, predictor and the SimCLR / SimSiam / BYOL models.

The three methods share one :class:`SSLModel`; they differ only where the methods differ:

* SimCLR: ``z = projector(backbone(x))``; InfoNCE on ``(z1, z2)``.
* SimSiam: ``p = predictor(z)``; negative cosine between ``p`` of one view and the
  stop-gradient ``z`` of the other.
* BYOL: as SimSiam, but the targets come from an EMA copy of backbone + projector
  (``tau = 0.99``), updated after every optimizer step.

The *embedding* whose norm the paper studies is the vector the loss normalises on the
gradient-carrying side: ``z`` for SimCLR, ``p`` for SimSiam and BYOL (the released code
applies GradScale there). The projector output ``z`` and the backbone representation ``h``
are recorded as well.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock, conv1x1

from .config import ModelConfig, RunConfig
from .losses import CONTRASTIVE_LOSSES, negative_cosine
from .norm_control import cut_initialization, gradscale


class NarrowResNet(nn.Module):
    """ResNet-18 layout (4 stages of 2 torchvision ``BasicBlock``) with ``width`` base channels.

    Stage widths ``w, 2w, 4w, 8w``; ``width = 64`` has ResNet-18's shapes. Initialisation as
    torchvision's ResNet (Kaiming-normal convs, BN weight 1 / bias 0, ``zero_init_residual``).
    The fast CPU backbone of the ``quick`` and ``smoke`` profiles.

    Args:
        width: base channels.
        stem: ``cifar`` (3x3 conv stride 1) or ``imagenet`` (7x7 stride 2 + 3x3 max-pool).
        layers: blocks per stage.

    Shapes: ``(B, 3, H, W) -> (B, 8 * width)``.
    """

    def __init__(self, width: int = 16, stem: str = "cifar", layers: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        if stem == "cifar":
            conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            pool: nn.Module = nn.Identity()
        else:
            conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            pool = nn.MaxPool2d(3, 2, 1)
        self.stem = nn.Sequential(conv1, nn.BatchNorm2d(width), nn.ReLU(inplace=True), pool)
        blocks: list[nn.Module] = []
        inplanes = width
        for i, n in enumerate(layers):
            planes = width * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                down = None
                if stride != 1 or inplanes != planes:
                    down = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
                blocks.append(BasicBlock(inplanes, planes, stride, down))
                inplanes = planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.output_dim = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.constant_(m.bn2.weight, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, 8 * width)`` of images ``(B, 3, H, W)``."""
        return torch.flatten(self.pool(self.blocks(self.stem(x))), 1)


def build_backbone(cfg: ModelConfig) -> tuple[nn.Module, int]:
    """Backbone without classification layer and its output dimension.

    ``resnet18`` / ``resnet50`` are torchvision's (``zero_init_residual=True``); with
    ``stem="cifar"`` the first conv is 3x3 stride 1 and the max-pool is removed (SimCLR B.9).

    Returns:
        (module mapping ``(B, 3, H, W) -> (B, dim)``, ``dim``).
    """
    if cfg.backbone == "resnet18_narrow":
        net = NarrowResNet(cfg.width, cfg.stem)
        return net, net.output_dim
    net = (resnet18 if cfg.backbone == "resnet18" else resnet50)(weights=None, zero_init_residual=True)
    if cfg.stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # PyTorch's default init, as released
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def build_projector(in_dim: int, cfg: ModelConfig) -> nn.Sequential:
    """The released projector: ``projector_layers`` Linear layers (ReLU between), each
    followed by BatchNorm1d when ``projector_batchnorm`` (the last one too).

    SimCLR: ``Linear(h,128)-ReLU-Linear(128,128)``; SimSiam/BYOL: 3 x (Linear 2048 + BN).
    The hidden width equals ``projector_out_dim`` in the released code; ``projector_hidden_dim``
    sets it here. Shapes: ``(B, in_dim) -> (B, projector_out_dim)``.
    """
    dims = [in_dim] + [cfg.projector_hidden_dim] * (cfg.projector_layers - 1) + [cfg.projector_out_dim]
    layers: list[nn.Module] = []
    for k in range(cfg.projector_layers):
        layers.append(nn.Linear(dims[k], dims[k + 1]))
        if cfg.projector_batchnorm:
            layers.append(nn.BatchNorm1d(dims[k + 1]))
        if k < cfg.projector_layers - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def build_predictor(dim: int, hidden: int) -> nn.Sequential:
    """SimSiam/BYOL predictor ``Linear(dim, hidden)-BN-ReLU-Linear(hidden, dim)`` (``(B, dim) -> (B, dim)``)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


@dataclass
class Outputs:
    """Per-view outputs: ``h`` representation ``(B, d_h)``, ``z`` projector ``(B, d_z)``,
    ``p`` predictor ``(B, d_z)`` or None, ``emb`` the embedding the loss normalises."""

    h: torch.Tensor
    z: torch.Tensor
    p: Optional[torch.Tensor]

    @property
    def emb(self) -> torch.Tensor:
        """The embedding the loss normalises: ``p`` when there is a predictor, else ``z``."""
        return self.p if self.p is not None else self.z


#: Parameters divided by cut-initialization per ``norm.cut_scope`` (module-name prefixes of
#: :class:`SSLModel`; a part the method lacks is skipped; None = every parameter).
#:
#: - ``all``: every parameter, BYOL's target included (released code: ``cut_weights(model, c)``).
#: - ``projector``: the projector and (SimSiam/BYOL) the predictor, and BYOL's target projector, so
#:   that the target starts as the same copy of the online network as in the released cut. This is
#:   the part that sets the initial embedding norm (z, and p), with the backbone's weights, their
#:   BatchNorms and hence their effective learning rate left as in the uncut run. (SimSiam/BYOL's
#:   projector layers are followed by BatchNorm, so *their* weights' effective lr grows as under
#:   the full cut; the backbone, whose h the kNN monitor measures, is untouched.)
#: - ``backbone``: the backbone and BYOL's target backbone.
CUT_SCOPES: dict[str, Optional[tuple[str, ...]]] = {
    "all": None,
    "projector": ("projector", "predictor", "target.projector"),
    "backbone": ("backbone", "target.backbone"),
}


class SSLModel(nn.Module):
    """SimCLR, SimSiam or BYOL, built from a :class:`RunConfig`.

    Cut-initialization (``norm.cut_constant``) is applied right after construction to the
    parameters of ``norm.cut_scope`` (:data:`CUT_SCOPES`; ``all`` as released: every parameter,
    BYOL's target included).
    """

    def __init__(self, cfg: RunConfig):
        super().__init__()
        self.method = cfg.method.name
        self.loss_name = cfg.method.loss
        self.temperature = cfg.method.temperature
        self.tau = cfg.method.ema_tau
        self.power = cfg.norm.gradscale_power
        self.backbone, self.rep_dim = build_backbone(cfg.model)
        self.projector = build_projector(self.rep_dim, cfg.model)
        self.predictor = (build_predictor(cfg.model.projector_out_dim, cfg.model.predictor_hidden_dim)
                          if cfg.model.predictor_hidden_dim is not None else None)
        self.target: Optional[nn.Module] = None
        if self.method == "byol":
            self.target = copy.deepcopy(nn.ModuleDict({"backbone": self.backbone, "projector": self.projector}))
            for p in self.target.parameters():
                p.requires_grad_(False)
        prefixes = CUT_SCOPES[cfg.norm.cut_scope]
        if prefixes is not None:
            own = {n.split(".")[0] for n, _ in self.named_parameters()} | {
                ".".join(n.split(".")[:2]) for n, _ in self.named_parameters() if n.startswith("target.")}
            prefixes = tuple(pre for pre in prefixes if pre in own)
        cut_initialization(self, cfg.norm.cut_constant, prefixes)
        # channels_last is ~1.4x faster on CPU (oneDNN) and fine on GPU; but torch 2.14.1's CPU
        # oneDNN backward corrupts memory for conv channel counts not divisible by 8 (seen with
        # width 4 and 6), so narrow networks of such widths stay in the default layout.
        safe = cfg.model.backbone != "resnet18_narrow" or cfg.model.width % 8 == 0
        self.memory_format = torch.channels_last if safe else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def online_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the optimizer (everything but BYOL's target)."""
        return [p for n, p in self.named_parameters() if not n.startswith("target.")]

    def forward(self, x: torch.Tensor) -> Outputs:
        """``x: (B, 3, H, W)`` float in [0, 1] -> :class:`Outputs`."""
        h = self.backbone(x.contiguous(memory_format=self.memory_format))
        z = self.projector(h)
        p = self.predictor(z) if self.predictor is not None else None
        return Outputs(h, z, p)

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, Outputs]:
        """Loss of a batch of view pairs (GradScale applied to the normalised embeddings).

        Returns:
            (scalar loss, outputs of view 1).
        """
        o1, o2 = self(x1), self(x2)
        e1, e2 = gradscale(o1.emb, self.power), gradscale(o2.emb, self.power)
        if self.method == "simclr":
            return CONTRASTIVE_LOSSES[self.loss_name](e1, e2, self.temperature), o1
        if self.method == "simsiam":
            t1, t2 = o1.z, o2.z
        else:
            with torch.no_grad():
                t1 = self.target["projector"](self.target["backbone"](x1))
                t2 = self.target["projector"](self.target["backbone"](x2))
        return negative_cosine(e1, t1, e2, t2, self.temperature), o1

    @torch.no_grad()
    def update_target(self) -> None:
        """BYOL EMA: ``target <- tau * target + (1 - tau) * online`` (parameters only, as released)."""
        if self.target is None:
            return
        online = dict(self.backbone.named_parameters(prefix="backbone"))
        online.update(self.projector.named_parameters(prefix="projector"))
        for name, t in self.target.named_parameters():
            t.mul_(self.tau).add_(online[name], alpha=1 - self.tau)
