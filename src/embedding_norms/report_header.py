"""REPORT.md's header: which code (commit) built it, on what machine, from which runs.

Split from :mod:`embedding_norms.report` (issue 22). The commit named is the last one that changed
the code (:data:`NOT_CODE` excluded): a commit that only adds the rebuilt outputs or edits docs
does not change it, and the header says so when HEAD is such a commit.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from .speed import cpu_model

#: Paths that are outputs or docs, not code (git pathspecs): changes to them neither make the
#: checkout "dirty" for the report nor move the commit it names.
NOT_CODE = ("figures", "tables", "results", "REPORT.md", "outputs", "docs", "*.md")


def _git(*args: str) -> str:
    """Output of a git command in this checkout ('' or 'unknown' when git is not available)."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def commit_text(git: Callable[..., str] = _git) -> str:
    """The commit line of REPORT.md's header (issue 22, item 6).

    ``git(*args) -> stdout``. The commit named is the last one that changed the code; when HEAD is
    later (it changed only outputs or docs, :data:`NOT_CODE`), the line says so, e.g.
    ``abc1234 (last code change; HEAD def5678 differs from it only in outputs/docs)``; uncommitted
    changes to the code are flagged.
    """
    spec = ["--", ".", *(f":(exclude){p}" for p in NOT_CODE)]
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    code = git("log", "-1", "--format=%h", *spec) or head
    dirty = git("status", "--porcelain", "--untracked-files=no", *spec)
    text = head if code == head or head == "unknown" else \
        f"{code} (last code change; HEAD {head} differs from it only in outputs/docs)"
    return text + (" (with uncommitted changes to the code)" if dirty else "")


def environment() -> dict[str, str]:
    """Git commit (:func:`commit_text`), date, host, CPU/GPU and library versions (for REPORT.md)."""
    import torch

    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "commit": commit_text(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": platform.node(),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def standin_datasets(results: list) -> dict[str, list[str]]:
    """Datasets replaced by generated stand-ins in the runs of ``results`` -> the artifacts using them.

    A run row counts as stand-in when it has ``standin: true`` or its ``quirks`` mention
    ``standin data`` (the row written by ``reproduce.common``'s ``describe``).
    """
    found: dict[str, set[str]] = {}
    for r in results:
        for row in r.runs:
            if row.get("standin") or "standin data" in str(row.get("quirks", "")):
                ds = str(row.get("dataset", "?")).split(" ")[0]
                found.setdefault(ds, set()).add(r.name)
    return {ds: sorted(arts) for ds, arts in sorted(found.items())}


def runs_usability(results: list) -> dict[str, Any]:
    """The distinct runs (by config hash) that the artifacts of ``results`` used, and which are usable.

    Returns:
        ``runs`` (count), ``usable`` (count of runs that finished training with intact files:
        ``done``, ``collapsed``, ``diverged``), ``damaged`` (list of {name, problems, fix}) and
        ``unusable`` ({state: count} of the other runs, e.g. failed or pending). Runs skipped at
        planning (no config) are not counted.
    """
    rows = {run["hash"]: run for r in results for run in r.runs if run.get("hash")}
    states = {h: str(run.get("status", "")).split(" ")[0] for h, run in rows.items()}
    damaged = [{"name": rows[h].get("name", h), "problems": rows[h].get("problems", []), "fix": rows[h].get("fix", "")}
               for h, st in states.items() if st == "damaged"]
    other: dict[str, int] = {}
    for st in states.values():
        if st not in ("done", "collapsed", "diverged", "damaged"):
            other[st] = other.get(st, 0) + 1
    usable = sum(st in ("done", "collapsed", "diverged") for st in states.values())
    return {"runs": len(rows), "usable": usable, "damaged": sorted(damaged, key=lambda d: d["name"]), "unusable": other}


def usability_line(u: dict[str, Any]) -> str:
    """Header line of :func:`runs_usability` ("29 of 30 usable, 1 damaged: <run> (...), fix: ...")."""
    if u["usable"] == u["runs"]:
        return f"- **Runs used:** all {u['runs']} usable (finished, files intact)"
    parts = [f"{len(u['damaged'])} damaged: " + "; ".join(
        f"`{d['name']}` ({', '.join(d['problems'])}), fix: {d['fix']}" for d in u["damaged"])] if u["damaged"] else []
    parts += [f"{n} {st}" for st, n in sorted(u["unusable"].items())]
    return (f"- **Runs used: {u['usable']} of {u['runs']} usable**, {', '.join(parts)}; the checks that lost seeds "
            "to them say so")
