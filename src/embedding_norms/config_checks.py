"""Value checks of a run config (split from :mod:`embedding_norms.config` to keep it readable):
every check names the key and what to do, and runs before any data are loaded."""

from __future__ import annotations

import math

from .facts import DATASETS, NUM_CLASSES, per_class
from .typed_yaml import ConfigError

PRECISIONS = ("fp32", "bf16")
#: Images per class of the CIFAR splits (a subset cannot ask for more).
CIFAR_PER_CLASS = {d: {s: per_class(d, s) for s in ("train", "test")} for d in ("cifar10", "cifar100")}


def check_values(cfg, source: str) -> None:
    """Check the values of a built :class:`~embedding_norms.config.RunConfig` (types and keys are
    checked when it is built): ranges, epochs inside the run, method/loss pairs, sizes that the
    dataset can give.

    Raises:
        ConfigError: the first value out of range, naming ``source`` and the key, with the fix.
    """
    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{source}: {key} {msg}")

    t, o, d, m, n, e = cfg.train, cfg.optim, cfg.data, cfg.model, cfg.norm, cfg.eval
    need(t.epochs >= 1, "train.epochs", f"must be a positive number of epochs, got {t.epochs}")
    for ep in t.eval_epochs + t.save_embeddings_epochs + t.full_test_norms_epochs:
        need(0 <= ep <= t.epochs, "train.eval_epochs/save_embeddings_epochs/full_test_norms_epochs",
             f"contains epoch {ep} outside 0..{t.epochs} (train.epochs)")
    for key, eps in (("train.eval_epochs", t.eval_epochs), ("train.save_embeddings_epochs", t.save_embeddings_epochs),
                     ("train.full_test_norms_epochs", t.full_test_norms_epochs)):
        dup = sorted({ep for ep in eps if list(eps).count(ep) > 1})
        need(not dup, key, f"lists epoch(s) {dup} more than once; give each epoch once")
    need(t.seed >= 0, "train.seed", f"must be >= 0, got {t.seed}")
    need(d.subset_seed >= 0, "data.subset_seed", f"must be >= 0, got {d.subset_seed}")
    need(t.probe_size >= 10, "train.probe_size", f"must be >= 10, got {t.probe_size}")
    need(t.precision in PRECISIONS, "train.precision", f"must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    need(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    need(0 <= o.momentum < 1, "optim.momentum", f"must be in [0, 1), got {o.momentum}")
    need(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    need(o.batch_size >= 2, "optim.batch_size", f"must be >= 2 (InfoNCE needs negatives), got {o.batch_size}")
    need(o.accumulation_steps >= 1, "optim.accumulation_steps", f"must be >= 1, got {o.accumulation_steps}")
    need(o.warmup_epochs >= 0, "optim.warmup_epochs", f"must be >= 0, got {o.warmup_epochs}")
    need(o.schedule_epochs is None or o.schedule_epochs > 0, "optim.schedule_epochs", f"must be > 0 or null, got {o.schedule_epochs}")
    need(o.schedule_factor > 0, "optim.schedule_factor", f"must be > 0, got {o.schedule_factor}")
    need(o.final_lr >= 0, "optim.final_lr", f"must be >= 0, got {o.final_lr}")
    need(n.cut_constant > 0, "norm.cut_constant", f"must be > 0 (1 = no cut), got {n.cut_constant}")
    need(m.width >= 4, "model.width", f"must be >= 4, got {m.width}")
    need(m.projector_layers in (2, 3), "model.projector_layers", f"must be 2 or 3, got {m.projector_layers}")
    need(m.projector_out_dim >= 2 and m.projector_hidden_dim >= 2, "model.projector_*_dim", "must be >= 2")
    need(m.predictor_hidden_dim is None or m.predictor_hidden_dim >= 2, "model.predictor_hidden_dim", "must be >= 2 or null")
    need(cfg.method.temperature > 0, "method.temperature", f"must be > 0, got {cfg.method.temperature}")
    need(0 <= cfg.method.ema_tau <= 1, "method.ema_tau", f"must be in [0, 1], got {cfg.method.ema_tau}")
    if cfg.method.name == "simclr":
        need(cfg.method.loss != "negative_cosine", "method.loss", "negative_cosine needs a predictor (simsiam/byol), not simclr")
        need(m.predictor_hidden_dim is None, "model.predictor_hidden_dim", "must be null for simclr")
    else:
        need(cfg.method.loss == "negative_cosine", "method.loss", f"must be negative_cosine for {cfg.method.name}")
        need(m.predictor_hidden_dim is not None, "model.predictor_hidden_dim", f"is required for {cfg.method.name}")
    need(d.train_size is None or d.train_size >= 10, "data.train_size", f"must be >= 10 or null, got {d.train_size}")
    need(d.train_size is None or d.train_size >= o.batch_size * o.accumulation_steps, "data.train_size",
         f"is {d.train_size}, fewer images than one optimizer step of optim.batch_size x optim.accumulation_steps "
         f"= {o.batch_size * o.accumulation_steps}; lower the batch size or enlarge data.train_size")
    need(d.test_size is None or d.test_size >= 10, "data.test_size", f"must be >= 10 or null, got {d.test_size}")
    need(d.image_size >= 8, "data.image_size", f"must be >= 8 pixels, got {d.image_size}")
    need(d.jitter_strength >= 0, "data.jitter_strength", f"must be >= 0, got {d.jitter_strength}")
    if d.classes is not None:
        need(len(d.classes) >= 2 and len(set(d.classes)) == len(d.classes) and min(d.classes) >= 0,
             "data.classes", f"must list >= 2 distinct non-negative class ids, got {list(d.classes)}")
        need(max(d.classes) < NUM_CLASSES[d.dataset], "data.classes",
             f"contains class id {max(d.classes)}, but {d.dataset} has classes 0..{NUM_CLASSES[d.dataset] - 1}")
    n_cls = NUM_CLASSES[d.dataset] if d.classes is None else len(d.classes)
    if d.imbalance_shift_per_seed:
        need(d.imbalance != "none" and d.imbalance_shift_per_seed > 0 and math.gcd(d.imbalance_shift_per_seed, n_cls) == 1,
             "data.imbalance_shift_per_seed", f"must be 0 or a positive shift coprime with the {n_cls} classes (and needs "
             f"data.imbalance), got {d.imbalance_shift_per_seed} with imbalance {d.imbalance!r}")
    if d.dataset in CIFAR_PER_CLASS and not d.standin:
        for split, size in (("train", d.train_size), ("test", d.test_size)):
            avail = CIFAR_PER_CLASS[d.dataset][split] * n_cls
            need(size is None or size <= avail, f"data.{split}_size",
                 f"is {size}, but {d.dataset} has only {avail} {split} images"
                 + (f" in the {n_cls} classes of data.classes" if d.classes is not None else "") + "; use null for all")
    for key, size in (("data.train_size", d.train_size), ("data.test_size", d.test_size), ("train.probe_size", t.probe_size)):
        need(size is None or size >= n_cls, key,
             f"must be at least the number of classes ({n_cls} in {d.dataset}) for a class-stratified subset, got {size}")
    need(e.knn_k >= 1, "eval.knn_k", f"must be >= 1, got {e.knn_k}")
    need(e.knn_temperature > 0, "eval.knn_temperature", f"must be > 0, got {e.knn_temperature}")
    need(e.novel in (None, "heldout") or e.novel in DATASETS, "eval.novel",
         f"must be null, 'heldout' or a dataset ({', '.join(DATASETS)}), got {e.novel!r}")
    if e.novel == "heldout":
        need(d.classes is not None, "eval.novel", "= heldout needs data.classes (the classes seen in training)")
