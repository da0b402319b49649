"""Building an artifact from its plan: read access to runs (:class:`RunHandle`), output
folders (:class:`OutputDirs`), and :func:`build`, which turns a :class:`~reproduce.artifact.Planned`
artifact into figures, tables, ``results/<name>.json`` and its section of REPORT.md.

:func:`build` records every run that is not usable *once* (one message format), calls the
artifact's pure parts (``frames`` -> ``figures``, ``checks``, ``notes``) and writes the outputs
atomically; an exception marks the artifact failed without stopping the others.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from embedding_norms.config import PROJECT_ROOT
from embedding_norms.provenance import source_checkout
from embedding_norms.plotting import save_figure, save_table, setup_style
from embedding_norms.report import ArtifactResult
from embedding_norms.runs import RunStatus, RunStore

from .artifact import Planned, RunSpec

#: The checkout this artifact code belongs to (where the ``quick`` outputs go); the configs'
#: folder's parent for an installed copy. The runner refuses to mix checkouts (issue 23), so in a
#: checkout this is also the library's.
REPO = source_checkout(Path(__file__).resolve().parent) or PROJECT_ROOT


class RunHandle:
    """Read access to one run of the store (metrics, per-class norms, embeddings, status)."""

    def __init__(self, spec: RunSpec, store: RunStore, data_dir: Optional[str] = None):
        self.spec, self.store = spec, store
        self.cfg = spec.cfg
        #: the offline data folder of the build (for analyses that read extra files, e.g. human labels)
        self.data_dir = data_dir

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
        """True when the run finished training healthy (``done``)."""
        return self.cfg is not None and self.status.state == "done"

    @property
    def measured(self) -> bool:
        """True when the run's records are complete and verified: ``done``, or ``collapsed`` (a
        collapse is an outcome of training, its metrics are what training measured)."""
        return self.cfg is not None and self.status.state in ("done", "collapsed")

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
        damage = {"problems": [str(q) for q in self._problems], "fix": self._problems[0].fix} \
            if st.state == "damaged" else {}
        quirks = (f"lr_schedule={c.optim.lr_schedule}, accumulation={c.optim.accumulation}"
                  f"{', standin data' if c.data.standin else ''}")
        return {"label": self.label, "hash": c.hash(), "name": c.name, "status": st.state + (f" ({st.reason})" if st.state != "done" and st.reason else ""),
                "epochs": c.train.epochs, "epochs_done": int(m.epoch.max()) if len(m) else 0,
                "train_images": c.data.train_size or "all", "dataset": c.data.dataset
                + (" (imbalanced)" if c.data.imbalance != "none" else ""), "quirks": quirks,
                "slurm_job_id": st.slurm_job_id, "stale": bool(st.finished and self.store.stale(c)), **damage}


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




def usable(runs: dict) -> dict:
    """The runs of ``runs`` ({key: RunHandle}) that finished training (state ``done``)."""
    return {k: h for k, h in runs.items() if h.usable}


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the output root (result files do not name this machine's folders)."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def build(planned: Planned, store: RunStore, out: OutputDirs, data_dir: Optional[str] = None) -> ArtifactResult:
    """Build one planned artifact and return its result (not yet written).

    Runs that were skipped at planning (no config) or did not finish (failed, pending,
    collapsed, diverged, damaged) are recorded as skipped parts with their state and reason;
    the artifact's ``frames`` get handles of every run that has a config (keyed as declared)
    and decide themselves what a diverged or collapsed run means for their claim.
    """
    art, p = planned.artifact, planned.params
    res = ArtifactResult(art.name, art.paper_ref, art.title, planned.profile, vector=art.vector)
    setup_style()
    t0 = time.time()
    handles = {k: RunHandle(s, store, data_dir) for k, s in planned.specs.items()}
    try:
        for h in handles.values():
            st = h.status
            if st.state != "done":
                res.skipped.append({"part": f"run {h.label}", "reason": st.state + (f": {st.reason}" if st.reason else "")})
        frames = art.frames({k: h for k, h in handles.items() if h.cfg is not None}, p)
        for name, frame in frames.items():
            if isinstance(frame, pd.DataFrame) and len(frame) and not name.startswith("_"):
                paths = save_table(frame, out.tables / (art.name + (f"_{name}" if name else "")))
                res.tables += [_relative(q, out.root) for q in paths]
        for suffix, fig in (art.figures(frames, p) or {}).items():
            paths = save_figure(fig, out.figures / (art.name + (f"_{suffix}" if suffix else "")))
            res.figures += [_relative(q, out.root) for q in paths]
        res.checks = list(art.checks(frames, p))
        res.notes = list(art.notes(frames, p))
        res.numbers = {"params": _plain(p)}
    except Exception:  # noqa: BLE001 - reported in REPORT.md, other artifacts still build
        res.status, res.error = "failed", traceback.format_exc()
    res.seconds = time.time() - t0
    res.runs = [h.describe() for h in handles.values()]
    stale = [r["label"] for r in res.runs if r.get("stale")]
    if stale:  # results of code that no longer exists: say so on every check (issue 12)
        for c in res.checks:
            c.detail = (c.detail + "; " if c.detail else "") + f"rests on {len(stale)} stale run(s) trained by other code"
        res.notes.append(f"{len(stale)} of the runs used were trained by other training code than the current one "
                         f"(stale; e.g. {stale[0]}): `python -m reproduce {planned.artifact.name} --retrain-stale` "
                         "retrains them.")
    _mark_lost_seeds(res, handles)
    if res.skipped and res.status == "built":
        res.status = "partial"
    return res


def _mark_lost_seeds(res: ArtifactResult, handles: dict) -> None:
    """Say on every seeded check with fewer seeds than the artifact trained that it lost them to the
    damaged runs of the artifact (issue 23): ``detail`` names the runs and the seeds it rests on."""
    damaged = [h for h in handles.values() if h.cfg is not None and h.status.state == "damaged"]
    if not damaged:
        return
    planned = len({h.cfg.train.seed for h in handles.values() if h.cfg is not None})
    names = ", ".join(sorted({h.cfg.name for h in damaged}))
    for c in res.checks:
        if c.n_seeds is not None and c.n_seeds < planned:
            c.detail = (c.detail + "; " if c.detail else "") + (
                f"LOST SEEDS: rests on {c.n_seeds} of {planned} seeds; damaged run(s) of this artifact left out: "
                f"{names} (fix in REPORT.md's header)")


def _plain(obj: Any) -> Any:
    """A JSON-ready copy of a params dataclass (tuples as lists)."""
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
