"""What every artifact script uses: the :class:`Artifact` record, the :class:`Plan` that turns
a profile into run configs, and the :class:`BuildContext` an artifact's build function gets.

An artifact script (``reproduce/<name>.py``) defines::

    ARTIFACT = Artifact(name=..., paper_ref=..., title=..., claims=(...), runs=runs, build=build)

    def runs(plan: Plan) -> list[RunSpec]:        # the training runs it needs (may be empty)
        return [plan.run("simclr", label="simclr", overrides={...})]

    def build(ctx: BuildContext) -> None:         # reads runs, computes, plots, checks claims
        m = ctx.run("simclr").metrics()
        ctx.save_figure(fig); ctx.check(claim="norm-growth", ...)

    if __name__ == "__main__":
        raise SystemExit(main_single(ARTIFACT))

Artifacts never train by hand: the runner trains what ``runs`` declares, then calls ``build``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import pandas as pd

from embedding_norms.config import RunConfig, artifact_params, load_profile
from embedding_norms.data import DataError, dataset_available
from embedding_norms.plotting import save_figure, save_table, setup_style
from embedding_norms.report import ArtifactResult, ClaimCheck
from embedding_norms.runs import RunStatus, RunStore

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunSpec:
    """A run an artifact needs: a label unique within the artifact and its config, or the
    reason it cannot run here (``cfg`` None, e.g. a dataset not available offline)."""

    label: str
    cfg: Optional[RunConfig]
    skipped: str = ""


@dataclass
class Plan:
    """A profile's view for declaring runs.

    Attributes:
        profile: ``paper``, ``quick`` or ``smoke``.
        data_dir, download: where data comes from (to decide what is available).
    """

    profile: str
    data_dir: Optional[str] = None
    download: Optional[bool] = None
    #: False (``status``): a missing CIFAR-10 skips its runs like any other missing dataset.
    strict: bool = True

    def params(self, artifact: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """Scale parameters of ``artifact`` for this profile (``artifacts.<name>`` in the profile YAML)."""
        return artifact_params(self.profile, artifact, defaults)

    @property
    def missing_data(self) -> str:
        """Profile policy for datasets that are not available: ``skip`` or ``standin``."""
        return load_profile(self.profile).get("missing_data", "skip")

    def run(self, method: str, label: str, overrides: Optional[Mapping[str, Any]] = None) -> RunSpec:
        """A run of ``method`` with this profile and ``overrides`` (nested or dotted keys).

        A dataset that is not available becomes a generated stand-in when the profile's
        ``missing_data`` is ``standin`` (smoke), else the run is skipped with the reason.
        CIFAR-10 is the exception: every profile but ``smoke`` needs it (the paper's main data
        set), so its absence is an error rather than a skip.

        Raises:
            ConfigError: an invalid config.
            DataError: CIFAR-10 is missing (outside ``smoke``), or a dataset file is corrupt.
        """
        cfg = RunConfig.load(method, self.profile, overrides or {})
        needed = {cfg.data.dataset}
        if cfg.eval.novel not in (None, "heldout"):
            needed.add(cfg.eval.novel)
        for ds in sorted(needed):
            ok, why = dataset_available(ds, self.data_dir, self.download)
            if ok:
                continue
            if self.missing_data == "standin":
                return RunSpec(label, cfg.replace({"data": {"standin": True}}))
            if ds == "cifar10" and self.strict:
                raise DataError(f"profile {self.profile} needs CIFAR-10, which is not available here: {why}")
            return RunSpec(label, None, f"{ds} is not available here: {' '.join(why.split())}")
        return RunSpec(label, cfg)


class RunHandle:
    """Read access to one run of the store (metrics, per-class norms, embeddings, status)."""

    def __init__(self, spec: RunSpec, store: RunStore):
        self.spec, self.store = spec, store
        self.cfg = spec.cfg

    @property
    def label(self) -> str:
        """The label the artifact declared the run under."""
        return self.spec.label

    @property
    def status(self) -> RunStatus:
        """The run's :class:`RunStatus` (``skipped`` with the reason when it could not be declared)."""
        if self.cfg is None:
            return RunStatus("skipped", self.spec.skipped)
        st = self.store.status(self.cfg)
        if st.finished:  # a finished run with a damaged file is not used (issue 14)
            if not hasattr(self, "_problems"):
                self._problems = self.store.verify(self.cfg)
            if self._problems:
                st.state, st.reason = "damaged", "; ".join(map(str, self._problems)) + f"; {self._problems[0].fix}"
        return st

    @property
    def usable(self) -> bool:
        """True when the run finished training (``done``)."""
        return self.cfg is not None and self.status.state == "done"

    def metrics(self) -> pd.DataFrame:
        """Per-epoch records (``metrics.csv``); empty when the run was skipped."""
        return self.store.metrics(self.cfg) if self.cfg is not None else pd.DataFrame()

    def class_norms(self) -> pd.DataFrame:
        """Per-epoch, per-class norm records (``class_norms.csv``); empty when skipped."""
        return self.store.class_norms(self.cfg) if self.cfg is not None else pd.DataFrame()

    def embeddings(self, epoch: Optional[int] = None) -> dict[str, np.ndarray]:
        """Saved embeddings (see :meth:`RunStore.embeddings`). Raises FileNotFoundError when none."""
        return self.store.embeddings(self.cfg, epoch)

    def describe(self) -> dict[str, Any]:
        """Row for REPORT.md: label, hash, status, epochs, train images, quirk options."""
        if self.cfg is None:
            return {"label": self.label, "status": f"skipped: {self.spec.skipped}"}
        c = self.cfg
        st = self.status
        m = self.metrics() if st.state != "damaged" else pd.DataFrame()
        quirks = (f"lr_schedule={c.optim.lr_schedule}, accumulation={c.optim.accumulation}"
                  f"{', standin data' if c.data.standin else ''}")
        return {"label": self.label, "hash": c.hash(), "name": c.name, "status": st.state + (f" ({st.reason})" if st.state != "done" and st.reason else ""),
                "epochs": c.train.epochs, "epochs_done": int(m.epoch.max()) if len(m) else 0,
                "train_images": c.data.train_size or "all", "dataset": c.data.dataset
                + (" (imbalanced)" if c.data.imbalance != "none" else ""), "quirks": quirks,
                "slurm_job_id": st.slurm_job_id}


@dataclass
class OutputDirs:
    """Where an artifact writes: ``figures/``, ``tables/``, ``results/`` and REPORT.md."""

    root: Path

    @property
    def figures(self) -> Path:
        """Folder of the figure files (PNG and PDF)."""
        return self.root / "figures"

    @property
    def tables(self) -> Path:
        """Folder of the table files (CSV, Markdown, LaTeX)."""
        return self.root / "tables"

    @property
    def results(self) -> Path:
        """Folder of ``<artifact>.json`` (numbers and claim checks)."""
        return self.root / "results"

    @property
    def report(self) -> Path:
        """Path of REPORT.md."""
        return self.root / "REPORT.md"

    @classmethod
    def for_profile(cls, profile: str, root: Optional[str] = None) -> "OutputDirs":
        """``quick`` writes into the repository (committed outputs); other profiles into
        ``outputs/<profile>/`` unless ``root`` is given."""
        if root:
            return cls(Path(root).resolve())
        return cls(REPO if profile == "quick" else REPO / "outputs" / profile)


@dataclass
class BuildContext:
    """What a build function gets: the plan, the runs, output helpers and the result record."""

    artifact: "Artifact"
    plan: Plan
    store: RunStore
    out: OutputDirs
    specs: dict[str, RunSpec]
    result: ArtifactResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = ArtifactResult(self.artifact.name, self.artifact.paper_ref, self.artifact.title, self.plan.profile)
        self._used: dict[str, RunHandle] = {}
        self._reported: set[str] = set()  # labels of runs whose absence a skip() already explains

    @property
    def profile(self) -> str:
        """Name of the profile being built."""
        return self.plan.profile

    def params(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """This artifact's scale parameters for the profile."""
        return self.plan.params(self.artifact.name, defaults)

    def run(self, label: str) -> RunHandle:
        """The run declared under ``label`` (recorded as used by this artifact)."""
        h = RunHandle(self.specs[label], self.store)
        self._used[label] = h
        return h

    def runs(self) -> list[RunHandle]:
        """All declared runs, in declaration order."""
        return [self.run(label) for label in self.specs]

    # -------------------------------------------------------------- outputs
    def save_figure(self, fig, suffix: str = "") -> None:
        """Save as ``figures/<name><suffix>.{png,pdf}``."""
        paths = save_figure(fig, self.out.figures / f"{self.artifact.name}{suffix}")
        self.result.figures += [self._relative(p) for p in paths]

    def save_table(self, frame: pd.DataFrame, suffix: str = "") -> None:
        """Save as ``tables/<name><suffix>.{csv,md,tex}``."""
        paths = save_table(frame, self.out.tables / f"{self.artifact.name}{suffix}")
        self.result.tables += [self._relative(p) for p in paths]

    def add_table_file(self, path: Path) -> None:
        """Record a table file the artifact wrote itself (atomically) under ``tables/``."""
        self.result.tables.append(self._relative(path))

    def _relative(self, path: Path) -> str:
        """``path`` relative to the output root (so result files do not name this machine's folders)."""
        try:
            return Path(path).resolve().relative_to(self.out.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def check(self, claim: str, test: str, statistic: str, value: Optional[float], threshold: str,
              holds: Optional[bool], detail: str = "") -> ClaimCheck:
        """Record a claim check (``holds=None`` when it could not be evaluated)."""
        c = ClaimCheck(claim, test, statistic, value, threshold, holds, detail)
        self.result.checks.append(c)
        return c

    def number(self, key: str, value: Any) -> None:
        """Record a computed number in ``results/<name>.json``."""
        self.result.numbers[key] = value

    def skip(self, part: str, reason: str, run: Optional[str] = None) -> None:
        """Record a part that was not built, and why; ``run`` is the label of the run whose
        absence it explains (so that :meth:`finish` does not report that run again)."""
        if run is not None:
            self._reported.add(run)
        self.result.skipped.append({"part": part, "reason": reason})

    def note(self, text: str) -> None:
        """Add a sentence to the artifact's section of REPORT.md (methods, choices, caveats)."""
        self.result.notes.append(text)

    def finish(self, seconds: float) -> ArtifactResult:
        """Complete the result: time, runs used, and every used run that did not finish (failed,
        pending, skipped) recorded as a skipped part, so the artifact is never shown as fully built
        when a run is missing. Diverged runs are results, not gaps."""
        self.result.seconds = seconds
        self.result.runs = [h.describe() for h in self._used.values()]
        for h in self._used.values():
            st = h.status
            if st.state not in ("done", "diverged") and h.label not in self._reported:
                self.skip(f"run {h.label}", f"{st.state}" + (f": {st.reason}" if st.reason else ""), run=h.label)
        if self.result.skipped and self.result.status == "built":
            self.result.status = "partial"
        return self.result


@dataclass(frozen=True)
class Artifact:
    """A figure or table of the paper: name, what it reproduces, runs needed, build function."""

    name: str
    paper_ref: str
    title: str
    claims: tuple[str, ...]
    runs: Callable[[Plan], list[RunSpec]]
    build: Callable[[BuildContext], None]
    #: Validates the artifact's profile parameters (``artifacts.<name>`` of the profile YAML)
    #: before any training; raises ValueError or ConfigError naming the parameter.
    check: Optional[Callable[[Plan], None]] = None


def no_runs(plan: Plan) -> list[RunSpec]:
    """``runs`` of an artifact that needs no training (theory and simulations)."""
    return []


def timed_build(artifact: Artifact, plan: Plan, store: RunStore, out: OutputDirs) -> ArtifactResult:
    """Call the artifact's build and return its result; an exception marks it failed (with the
    traceback in the result) instead of stopping the other artifacts."""
    import traceback

    setup_style()
    specs = {s.label: s for s in artifact.runs(plan)}
    ctx = BuildContext(artifact, plan, store, out, specs)
    t0 = time.time()
    try:
        artifact.build(ctx)
    except Exception:  # noqa: BLE001 - reported in REPORT.md, other artifacts still build
        ctx.result.status = "failed"
        ctx.result.error = traceback.format_exc()
    return ctx.finish(time.time() - t0)


def main_single(artifact: Artifact) -> int:
    """Entry point of ``python reproduce/<name>.py``: the runner restricted to this artifact."""
    import sys

    from reproduce.runner import main

    return main([artifact.name, *sys.argv[1:]])
