"""Run configuration: dataclasses, YAML layering, validation and a stable hash.

A run is fully described by a :class:`RunConfig`. It is built from three layers of YAML
(later layers win):

1. ``configs/<method>.yaml``: the released code's settings for SimCLR / SimSiam / BYOL
   (PAPER.md, "Settings of the released code");
2. ``configs/profiles/<profile>.yaml``: the *scale* of the experiment (epochs, subset sizes,
   backbone, batch size, evaluation epochs): its ``run`` section applies to every method and
   its ``methods.<method>`` section to one method;
3. overrides given in code (an artifact's sweep value, e.g. ``{"optim": {"weight_decay": 0}}``)
   or on the command line as dotted keys (``optim.weight_decay=0``).

Every key and type is validated before anything is computed; an unknown key, a wrong type
or a value out of range raises :class:`ConfigError` naming the key, the file it came from
and how to fix it. :meth:`RunConfig.hash` is a short SHA-256 of the canonical JSON of the
whole config (seed included), identical on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

from .config_checks import CIFAR_PER_CLASS, PRECISIONS, check_values  # noqa: F401 (re-exported)
from .facts import DATASETS, NUM_CLASSES, per_class  # noqa: F401 (DATASETS, NUM_CLASSES re-exported)
from .profiles import METHODS, CONFIG_DIR, PROFILE_DIR, PROFILES, PROJECT_ROOT, artifact_params, load_profile  # noqa: F401 (re-exported)
from .typed_yaml import (ConfigError, _build, _check_keys, _deep_merge, _nest, _plain, _read_yaml,  # noqa: F401
                         parse_dotted)






# --------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class DataConfig:
    """Which images a run trains and evaluates on.

    Attributes:
        dataset: training dataset (one of ``DATASETS``).
        imbalance: ``"none"`` or ``"exponential"``: class ``i`` keeps
            ``floor(n * base**(-i))`` training images, ``n`` the per-class count before
            imbalancing (5000 on CIFAR-10, 500 on CIFAR-100); base 1.5 on CIFAR-10 and
            1.03365 on CIFAR-100 as in the released code.
        imbalance_shift_per_seed: ``k``: the class sizes rotate with the training seed ``s``, class
            ``c`` keeping the size of rank ``(c - s k) mod K`` (``K`` classes; class ``s k mod K`` is
            the largest); 0 = the released order (class ``i`` has rank ``i`` in every seed). Needs
            ``gcd(k, K) = 1``, so that ``K`` consecutive seeds give every class every size (issue 20).
        classes: train (and test) only on these class ids; the remaining classes form the
            "novel" set of the class-holdout design. ``None`` = all classes.
        train_size: class-stratified, seeded subset of the (balanced) training set with this
            many images, taken before imbalancing. ``None`` = the full training set.
        test_size: class-stratified subset of the test set used for kNN evaluation and
            saved test embeddings. ``None`` = the full test set.
        image_size: side length in pixels of the training crops (32 for CIFAR, 128 otherwise).
        standin: replace the images by a generated stand-in with the same number of
            classes and image size (wiring tests of datasets that are not available).
        jitter_strength: colour-jitter strength ``s`` (0.5 on CIFAR, 1 otherwise).
        subset_seed: seed of the subsets (training, test, probe and novel images) and of
            generated stand-ins; independent of ``train.seed``, so that the seeds of one
            comparison train on the same images.
        source: where the images come from (``npz`` offline JPEG copy, ``torchvision`` pickles,
            ``folder``, ``download``, ``standin``), set at planning time by
            :func:`~embedding_norms.data.sources.resolve_data_source`; part of the run's identity
            (JPEG and pickles are different images); training refuses a run whose source is not
            the one found. ``None`` = not recorded (left out of the hash, as before the field).
    """

    dataset: Literal["cifar10", "cifar100", "imagenet100", "flowers102", "stanford_cars"] = "cifar10"
    imbalance: Literal["none", "exponential"] = "none"
    imbalance_shift_per_seed: int = 0
    classes: Optional[tuple[int, ...]] = None
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    image_size: int = 32
    standin: bool = False
    jitter_strength: float = 0.5
    subset_seed: int = 0
    source: Optional[Literal["npz", "torchvision", "folder", "download", "standin"]] = None


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, projector and predictor (PAPER.md settings table).

    Attributes:
        backbone: ``resnet18`` / ``resnet50`` (torchvision, ``zero_init_residual=True``) or
            ``resnet18_narrow`` (the same BasicBlock layout with ``width`` base channels: the
            fast CPU backbone of the ``quick`` and ``smoke`` profiles).
        stem: ``cifar`` (3x3 conv, stride 1, no max-pool) or ``imagenet`` (7x7 stride 2 + pool).
        width: base channel count of ``resnet18_narrow`` (ignored otherwise; 64 = ResNet-18).
        projector_hidden_dim, projector_out_dim: projector widths.
        projector_layers: 2 (SimCLR) or 3 (SimSiam, BYOL) Linear layers.
        projector_batchnorm: BatchNorm1d after every projector Linear (SimSiam, BYOL).
        predictor_hidden_dim: bottleneck of the predictor (SimSiam, BYOL); ``None`` = no predictor.
    """

    backbone: Literal["resnet18", "resnet50", "resnet18_narrow"] = "resnet18"
    stem: Literal["cifar", "imagenet"] = "cifar"
    width: int = 64
    projector_hidden_dim: int = 128
    projector_out_dim: int = 128
    projector_layers: int = 2
    projector_batchnorm: bool = False
    predictor_hidden_dim: Optional[int] = None


@dataclass(frozen=True)
class MethodConfig:
    """The SSL method and its loss (Section 2 of the paper; PAPER.md settings table).

    Attributes:
        name: ``simclr``, ``simsiam`` or ``byol``.
        loss: ``infonce`` (released variant: one direction, positive excluded from the
            denominator), ``nt_xent`` (standard symmetric SimCLR loss), ``attraction`` /
            ``repulsion`` (the two InfoNCE parts alone), ``negative_cosine`` (SimSiam/BYOL).
        temperature: InfoNCE temperature (0.5) or the divisor of the cosine loss (1.0).
        ema_tau: BYOL target momentum.
    """

    name: Literal["simclr", "simsiam", "byol"] = "simclr"
    loss: Literal["infonce", "nt_xent", "attraction", "repulsion", "negative_cosine"] = "infonce"
    temperature: float = 0.5
    ema_tau: float = 0.99


@dataclass(frozen=True)
class OptimConfig:
    """SGD and learning-rate schedule (released code: ``get_lr`` inside ``LambdaLR``).

    Attributes:
        lr: peak learning rate.
        momentum, nesterov, weight_decay: SGD settings (weight decay on every parameter).
        batch_size: images per forward pass (each gives two views).
        accumulation_steps: micro-batches whose gradients are summed per optimizer step.
        warmup_epochs: linear warm-up length in epochs (derived from ``warmup_fraction`` when
            that is set).
        warmup_fraction: warm-up as a fraction of the cosine horizon (``schedule_epochs``, or the
            run's epochs when that is ``None``): the released 10 of 512 epochs is ``0.01953125``.
            ``None`` = ``warmup_epochs`` as given. Profiles use the fraction so that the warm-up
            follows the run's length (issue 11).
        schedule_epochs: horizon of the cosine decay in epochs ("as if training lasted" this
            long; 512 in the released code). ``None`` = the run's own epochs x ``schedule_factor``.
        schedule_factor: with ``schedule_epochs: null``, the horizon as a multiple of the run. The
            quick scale rule (README "Deviations"): released accumulation / profile accumulation
            (SimSiam 8/2, BYOL 16/2), so that with ``accumulation: released`` the warm-up share and
            the part of the cosine a run covers are the released run's.
        final_lr: lower end of the cosine.
        lr_schedule: ``released`` reproduces the released code, where the schedule value is
            used as a *multiplier* of ``lr`` (effective peak ``lr**2``); ``intended`` uses it
            as the learning rate itself (peak ``lr``).
        accumulation: ``released`` sums micro-batch losses without dividing by
            ``accumulation_steps`` and counts the schedule in micro-batches while stepping it
            once per optimizer step (stretched ``accumulation_steps`` times); ``intended``
            averages the losses and counts the schedule in optimizer steps.
        predictor_constant_lr: SimSiam's released code gives the predictor its own SGD with
            a constant ``lr`` (no schedule), as in the SimSiam paper.
    """

    lr: float = 0.6
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-6
    batch_size: int = 256
    accumulation_steps: int = 1
    warmup_epochs: float = 10.0
    warmup_fraction: Optional[float] = None
    schedule_epochs: Optional[float] = 512.0
    schedule_factor: float = 1.0
    final_lr: float = 1e-3
    lr_schedule: Literal["released", "intended"] = "released"
    accumulation: Literal["released", "intended"] = "released"
    predictor_constant_lr: bool = False

    def horizon(self, epochs: float) -> float:
        """Cosine horizon in epochs: ``schedule_epochs``, else ``epochs * schedule_factor``."""
        return self.schedule_epochs if self.schedule_epochs is not None else epochs * self.schedule_factor


@dataclass(frozen=True)
class NormControlConfig:
    """The paper's two ways of manipulating embedding norms (Section 4).

    Attributes:
        cut_constant: cut-initialization constant ``c``: the parameters named by ``cut_scope`` of
            the freshly initialised network are divided by ``c`` (1 = plain training).
        cut_scope: which parameters the cut divides (:data:`embedding_norms.models.CUT_SCOPES`):
            ``all`` (as released: backbone, projector, predictor and BYOL's target), ``projector``
            (projector and predictor, and BYOL's target projector: the part that sets the initial
            embedding norm; the backbone is untouched) or ``backbone`` (backbone and BYOL's target
            backbone). Left out of the config's dict and hash when ``all`` or when ``c = 1`` (the
            run is then the uncut or released-cut run it always was).
        gradscale_power: GradScale power ``p``: the gradient of each embedding row is
            multiplied by ``||z||**p`` before normalisation (0 = plain training).
    """

    cut_constant: float = 1.0
    gradscale_power: float = 0.0
    cut_scope: Literal["all", "projector", "backbone"] = "all"


@dataclass(frozen=True)
class TrainConfig:
    """Length, seed, checkpoints and records of a run.

    Attributes:
        epochs: number of training epochs (>= 1).
        seed: seeds model initialisation, data order and augmentations (the images are set by
            ``data.subset_seed``).
        eval_epochs: epochs after which the weighted kNN accuracy is measured (0 = before
            training).
        save_embeddings_epochs: epochs after which embeddings of the train (un-augmented and
            one augmented view), test and novel sets are saved.
        full_test_norms_epochs: epochs at which those saved embeddings also hold the norms (h, z,
            p; no vectors) of *every* test image of the dataset, split ``test_all``, not only the
            ``data.test_size`` subset (Figure 4's CIFAR-10H panel, issue 20); epochs at which no
            embeddings are saved are ignored. Empty (the default) is left out of the config hash.
        probe_size: number of un-augmented training images (class-stratified, fixed) whose
            embedding and representation norms are recorded after every epoch.
        linear_probe: train a linear probe on the frozen backbone at the end of training.
        precision: ``fp32``, or ``bf16`` (bfloat16 autocast around the training forward pass
            and loss only; weights, optimizer state, norms, kNN and saved embeddings stay fp32).
        compile: ``torch.compile`` the model for training (long GPU runs; off by default).
    """

    epochs: int = 512
    seed: int = 0
    eval_epochs: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    save_embeddings_epochs: tuple[int, ...] = (512,)
    full_test_norms_epochs: tuple[int, ...] = ()
    probe_size: int = 2000
    linear_probe: bool = False
    precision: str = "fp32"
    compile: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Attributes:
        knn_k, knn_temperature: weighted kNN (InstDisc) on the backbone representation h.
        knn_k_scaled: scale ``knn_k`` with the memory bank (issue 19): ``k = max(10,
            round(knn_k * N_bank / 50 000))``, the released monitor's share of its 50 000-image
            bank (200 / 50 000 = 0.4 %); reduced profiles set it (3000 images: k = 12).
        novel: images saved as the "novel" split with the embeddings: ``heldout`` (test images
            of the classes not in ``data.classes``), or a dataset name (e.g. ``cifar100``),
            or ``None``.
        linear_probe_epochs: logistic-regression iterations of the linear probe (``logistic``).
        linear_probe_variant: ``logistic`` (scikit-learn on frozen eval-mode features) or
            ``released`` (the released ``lin_evaluator.py``: a linear layer trained with SGD,
            momentum 0.9, no weight decay, BatchNorm of the backbone in training mode, test
            accuracy at the epoch of the lowest training loss).
        linear_probe_lr: SGD learning rate of the ``released`` probe; ``None`` = released value
            (0.1 SimCLR, 0.5 SimSiam/BYOL).
        linear_probe_sgd_epochs: epochs of the ``released`` probe; ``None`` = released value
            (2; BYOL 8).
        epoch0_batchnorm: BatchNorm running statistics of the untrained network's evaluation
            (epoch 0): ``recalibrated`` (set from training images, issue 19:
            :func:`embedding_norms.evaluate.recalibrated_batchnorm`) or ``initial`` (mean 0,
            variance 1: every BatchNorm an identity in eval mode, the earlier behaviour).
    """

    knn_k: int = 200
    knn_temperature: float = 0.1
    knn_k_scaled: bool = False
    novel: Optional[str] = None
    linear_probe_epochs: int = 100
    linear_probe_variant: Literal["logistic", "released"] = "logistic"
    linear_probe_lr: Optional[float] = None
    linear_probe_sgd_epochs: Optional[int] = None
    epoch0_batchnorm: Literal["recalibrated", "initial"] = "recalibrated"


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run (and therefore its hash)."""

    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    norm: NormControlConfig = field(default_factory=NormControlConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists) suitable for YAML/JSON. Left out when they change
        nothing, so configs and hashes of runs planned without them are those from before the fields:
        an unset ``data.source``, ``data.imbalance_shift_per_seed = 0`` (the released order), an empty ``train.full_test_norms_epochs``, and ``norm.cut_scope``
        when it is ``all`` or ``cut_constant = 1``."""
        d = _plain(dataclasses.asdict(self))
        if d["data"]["source"] is None:
            del d["data"]["source"]
        if not d["train"]["full_test_norms_epochs"]:
            del d["train"]["full_test_norms_epochs"]
        if d["optim"]["schedule_factor"] == 1:
            del d["optim"]["schedule_factor"]
        if d["norm"]["cut_scope"] == "all" or d["norm"]["cut_constant"] == 1:
            del d["norm"]["cut_scope"]
        if d["data"]["imbalance_shift_per_seed"] == 0:
            del d["data"]["imbalance_shift_per_seed"]
        return d

    def hash(self) -> str:
        """Stable 10-hex-digit SHA-256 of the canonical JSON of the full config (seed included)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    @property
    def name(self) -> str:
        """Run directory name: ``<method>-<dataset>[-imb][-cls]-<hash>``."""
        parts = [self.method.name, self.data.dataset]
        if self.data.imbalance != "none":
            parts.append("imb")
        if self.data.classes is not None:
            parts.append("holdout")
        return "-".join(parts + [self.hash()])

    def replace(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """A copy with nested overrides applied and validated (``{"optim": {"lr": 0.1}}``)."""
        merged = _merge_layer(self.to_dict(), _nest(dict(overrides)), source="overrides")
        return from_dict(merged, source="overrides")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        method: str,
        profile: str = "paper",
        overrides: Optional[Mapping[str, Any]] = None,
        config_dir: Path = CONFIG_DIR,
    ) -> "RunConfig":
        """Build a validated config from ``configs/<method>.yaml`` + profile + overrides.

        Args:
            method: ``simclr``, ``simsiam`` or ``byol``.
            profile: ``paper``, ``quick`` or ``smoke`` (a file in ``configs/profiles``).
            overrides: nested or dotted-key dict applied last.

        Raises:
            ConfigError: unknown method/profile, unknown key, wrong type, invalid value.
        """
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        base_path = Path(config_dir) / f"{method}.yaml"
        prof = load_profile(profile, config_dir)
        layers = [
            (_read_yaml(base_path), str(base_path)),
            (prof.get("run") or {}, f"{prof['_path']} (run)"),
            ((prof.get("methods") or {}).get(method) or {}, f"{prof['_path']} (methods.{method})"),
            (_nest(dict(overrides or {})), "overrides"),
        ]
        merged: dict[str, Any] = {}
        for layer, source in layers:
            _check_keys(RunConfig, layer, source, prefix="")  # name the file that has the bad key
            merged = _merge_layer(merged, layer, source=source)
        cfg = from_dict(merged, source=f"{base_path} + profile {profile}")
        if cfg.method.name != method:
            raise ConfigError(f"{base_path}: method.name is {cfg.method.name!r} but the file is for {method!r}")
        return cfg


def from_dict(data: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Validate a nested dict and build a :class:`RunConfig`.

    Raises:
        ConfigError: unknown key, wrong type or invalid value (message names ``source``).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    cfg = _build(RunConfig, data, source, prefix="")
    o = cfg.optim
    if o.warmup_fraction is not None:
        if not 0 <= o.warmup_fraction < 1:
            raise ConfigError(f"{source}: optim.warmup_fraction must be in [0, 1) (of the cosine horizon), "
                              f"got {o.warmup_fraction}")
        horizon = o.horizon(cfg.train.epochs)
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(o, warmup_epochs=round(o.warmup_fraction * horizon, 9)))
    check_values(cfg, source)
    return cfg


def _merge_layer(base: Mapping[str, Any], layer: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Merge a config layer; a layer that gives ``optim.warmup_epochs`` without
    ``optim.warmup_fraction`` sets the warm-up in epochs (it clears an earlier layer's fraction):
    the latest layer that states a warm-up wins."""
    merged = _deep_merge(base, layer, source)
    opt = layer.get("optim") if isinstance(layer.get("optim"), Mapping) else {}
    if "warmup_epochs" in opt and "warmup_fraction" not in opt and isinstance(merged.get("optim"), dict):
        merged["optim"]["warmup_fraction"] = None
    return merged
