"""Declaring an artifact: the :class:`Plan` that turns a profile into run configs, the
:class:`RunSpec` of one needed run, and the :class:`Artifact` record read from a module.

An artifact is a module ``reproduce/<name>.py`` (the name comes from the file) with::

    PAPER_REF = "Section 4.1 ..."; TITLE = "..."; CLAIMS = ("cut-init",)
    VECTOR = "projector output z"                 # which vector its numbers measure

    @dataclass(frozen=True)
    class Params:                                 # artifacts.<name> of the profile YAML, validated
        constants: tuple[float, ...] = (1.0, 3.0)
        def __post_init__(self): ...              # ValueError names the parameter

    class Key(NamedTuple):                        # what a run *is* for this artifact
        method: str; c: float; seed: int

    def runs(plan, p) -> dict[Key, RunSpec]       # optional: the training runs it needs
    def frames(runs, p) -> dict[str, DataFrame]   # pure: tables from the keyed run handles
    def figures(frames, p) -> dict[str, Figure]   # optional: "" = the main figure, else a suffix
    def checks(frames, p) -> list[ClaimCheck]     # claim checks with intervals over seeds
    def notes(frames, p) -> list[str]             # optional: sentences for REPORT.md

The runner plans every artifact once (:func:`plan_artifact`), trains what is missing, then
builds each artifact from the same plan (``reproduce.context.build``). Labels are for display
only; runs are looked up by their key. Nothing here imports the runner or another artifact.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Optional

from embedding_norms.config import ConfigError, RunConfig, artifact_params, load_profile
from embedding_norms.data import DataError, dataset_available
from embedding_norms.data.sources import resolve_data_source


@dataclass(frozen=True)
class RunSpec:
    """A run an artifact needs: its config, or the reason it cannot run here (``cfg`` None,
    e.g. a dataset not available offline). ``label`` is for display only."""

    label: str
    cfg: Optional[RunConfig]
    skipped: str = ""


@dataclass
class Plan:
    """A profile's view for declaring runs.

    Attributes:
        profile: ``paper``, ``quick`` or ``smoke``.
        data_dir, download: where data comes from (to decide what is available).
        strict: False (``status``): a missing CIFAR-10 skips its runs like any other dataset.
    """

    profile: str
    data_dir: Optional[str] = None
    download: Optional[bool] = None
    strict: bool = True
    #: Number of training seeds; None = the profile's ``seeds`` (tests and one-off builds override it).
    n_seeds: Optional[int] = None
    #: Plan datasets that are not available as generated stand-ins whatever the profile says (to
    #: list or test every run of a profile on a machine without its data).
    standins: bool = False

    def __post_init__(self) -> None:
        self._profile = load_profile(self.profile)
        self._cache: dict[tuple[str, str], RunConfig] = {}

    @property
    def seeds(self) -> tuple[int, ...]:
        """Training seeds of every comparison (profile key ``seeds``, or ``n_seeds``: 0 .. n-1)."""
        return tuple(range(int(self.n_seeds or self._profile.get("seeds", 1))))

    @property
    def missing_data(self) -> str:
        """Profile policy for datasets that are not available: ``skip`` or ``standin``."""
        return "standin" if self.standins else self._profile.get("missing_data", "skip")

    def params(self, artifact: str, cls: type) -> Any:
        """The artifact's validated parameters (``artifacts.<artifact>`` of the profile)."""
        return artifact_params(self.profile, artifact, cls)

    def section(self, artifact: str) -> Mapping[str, Any]:
        """The profile's raw ``artifacts.<artifact>`` mapping (empty when absent), for a run family
        that several artifacts share and one artifact's section designs (e.g. the class order of the
        imbalanced runs, ``experiments.imbalanced_overrides``); that artifact's ``Params`` validates it."""
        sec = (self._profile.get("artifacts") or {}).get(artifact) or {}
        return sec if isinstance(sec, Mapping) else {}

    def config(self, method: str, overrides: Optional[Mapping[str, Any]] = None) -> RunConfig:
        """The validated config of ``method`` at this profile with ``overrides`` (nested or dotted).

        Raises:
            ConfigError: an invalid config (the message names the key).
        """
        import json

        key = (method, json.dumps(overrides or {}, sort_keys=True, default=str))
        if key not in self._cache:
            self._cache[key] = RunConfig.load(method, self.profile, overrides or {})
        return self._cache[key]

    def run(self, method: str, label: str, overrides: Optional[Mapping[str, Any]] = None) -> RunSpec:
        """A run of ``method`` with this profile and ``overrides``.

        A dataset that is not available becomes a generated stand-in when the profile's
        ``missing_data`` is ``standin`` (smoke), else the run is skipped with the reason.
        CIFAR-10 is the exception outside ``smoke``: its absence is an error.

        Raises:
            ConfigError: an invalid config.
            DataError: CIFAR-10 is missing (outside ``smoke``), or a dataset file is corrupt.
        """
        cfg = self.config(method, overrides)
        needed = {cfg.data.dataset}
        if cfg.eval.novel not in (None, "heldout"):
            needed.add(cfg.eval.novel)
        for ds in sorted(needed):
            ok, why = dataset_available(ds, self.data_dir, self.download)
            if ok:
                continue
            if self.missing_data == "standin":
                cfg = cfg.replace({"data": {"standin": True}})
                break
            if ds == "cifar10" and self.strict:
                raise DataError(f"profile {self.profile} needs CIFAR-10, which is not available here: {why}")
            return RunSpec(label, None, f"{ds} is not available here: {' '.join(why.split())}")
        # the data source (JPEG archive, torchvision pickles, stand-in) is part of the run's identity
        return RunSpec(label, resolve_data_source(cfg, self.data_dir, self.download))


@dataclass(frozen=True)
class Artifact:
    """A figure or table of the paper, read from its module (see the module docstring)."""

    name: str
    paper_ref: str
    title: str
    claims: tuple[str, ...]
    vector: str
    params_cls: type
    runs: Callable[[Plan, Any], Mapping[Hashable, RunSpec]]
    frames: Callable[[Mapping[Hashable, Any], Any], dict]
    figures: Callable[[dict, Any], dict]
    checks: Callable[[dict, Any], list]
    notes: Callable[[dict, Any], list]

    @classmethod
    def from_module(cls, module: types.ModuleType) -> "Artifact":
        """The artifact defined by ``module`` (name = the module's file name).

        Raises:
            AttributeError: a required attribute (PAPER_REF, TITLE, CLAIMS, VECTOR, Params,
                frames, checks) is missing.
        """
        name = module.__name__.rsplit(".", 1)[-1]
        missing = [a for a in ("PAPER_REF", "TITLE", "CLAIMS", "VECTOR", "Params", "frames", "checks")
                   if not hasattr(module, a)]
        if missing:
            raise AttributeError(f"reproduce/{name}.py lacks {', '.join(missing)} (see reproduce/artifact.py)")
        return cls(name=name, paper_ref=module.PAPER_REF, title=module.TITLE, claims=tuple(module.CLAIMS),
                   vector=module.VECTOR, params_cls=module.Params,
                   runs=getattr(module, "runs", lambda plan, p: {}), frames=module.frames,
                   figures=getattr(module, "figures", lambda frames, p: {}), checks=module.checks,
                   notes=getattr(module, "notes", lambda frames, p: []))


@dataclass(frozen=True)
class Planned:
    """One artifact planned for a profile: its validated parameters and keyed runs."""

    artifact: Artifact
    params: Any
    specs: Mapping[Hashable, RunSpec]
    profile: str


def plan_artifact(artifact: Artifact, plan: Plan) -> Planned:
    """Validate the artifact's parameters and declare its runs (before any compute).

    Raises:
        ConfigError: an invalid parameter or run config (named with its profile key), or an
            artifact parameter that makes a needed run impossible (raised by ``runs``).
        DataError: a required dataset is missing or corrupt.
    """
    params = plan.params(artifact.name, artifact.params_cls)
    try:
        specs = dict(artifact.runs(plan, params))
    except (ConfigError, DataError):
        raise
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"profile {plan.profile}: artifacts.{artifact.name}: {exc} "
                          f"(fix configs/profiles/{plan.profile}.yaml)") from None
    return Planned(artifact, params, specs, plan.profile)


def seeded(plan: Plan, overrides: Optional[Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """``overrides`` with ``train.seed = seed`` added (the seed varies initialisation, data
    order and augmentation; the images stay those of ``data.subset_seed``)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (overrides or {}).items()}
    out.setdefault("train", {})["seed"] = int(seed)
    return out
