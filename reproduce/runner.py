"""The top-level runner: ``python -m reproduce [all | NAME ... | status] --profile ... --launcher ...``.

1. Plan: every selected artifact declares the runs it needs for the profile (validated
   configs; datasets that are missing are skipped with their reason, or replaced by a
   stand-in in the ``smoke`` profile).
2. Train: runs are deduplicated by config hash; finished runs are reused; pending runs are
   trained locally or as a Slurm job array (``embedding_norms.launch``).
3. Build: each artifact reads its runs and writes ``figures/``, ``tables/``,
   ``results/<name>.json``; a failing artifact is reported and the others still build.
4. Report: REPORT.md is rebuilt from all result files of the profile.

Outputs of the ``quick`` profile go into the repository (they are committed); ``smoke`` and
``paper`` write into ``outputs/<profile>/`` unless ``--out`` says otherwise. The repository is the
checkout of this artifact code; before any work the runner checks that the library and the working
directory belong to the same checkout (exit 2 otherwise), and a build whose outputs go elsewhere
says where on its first line.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Optional

from embedding_norms.config import PROFILES, ConfigError
from embedding_norms.data import DataError, check_data_dir, check_run_sizes
from embedding_norms.launch import SlurmOptions, default_layout, execute, stale_runs
from embedding_norms.io import unwritable_folder, write_json
from embedding_norms.provenance import (ARTIFACT_CODE_ENV, PACKAGE_DIR, MixedCheckoutError, check_one_checkout,
                                        describe_code, enclosing_checkout)
from embedding_norms.report import environment, load_results, render_report, runs_usability, write_result
from embedding_norms.runs import RunStore, is_locked
from embedding_norms.summary_figure import draw_summary
from embedding_norms.speed import hours_line, run_pairs
from embedding_norms.train import resolve_device

from .artifact import Artifact, Plan, Planned, RunSpec, plan_artifact
from .context import OutputDirs, build
from .costs import dry_run_lines, missing_data_line
from .registry import load_artifacts

#: SimCLR training throughput measured on the 2-core development CPU (pairs of views per second
#: at 32 px; README "Profiles"), keyed by (backbone, width, stem); used by --dry-run for a rough
#: time estimate. ResNet-18 with the CIFAR stem: ~75 images/s forward+backward (PAPER.md).
#: The folder of the artifact code this process runs (the ``reproduce`` package).
ARTIFACT_DIR = Path(__file__).resolve().parent

CPU_PAIRS_PER_SECOND = {("resnet18_narrow", 32, "imagenet"): 500.0, ("resnet18_narrow", 16, "cifar"): 155.0,
                        ("resnet18_narrow", 8, "cifar"): 400.0, ("resnet18", 64, "imagenet"): 115.0,
                        ("resnet18", 64, "cifar"): 37.0}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _jobs(text: str):
    return "auto" if text == "auto" else _positive_int(text)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m reproduce`` (see the module docstring and README)."""
    p = argparse.ArgumentParser(prog="python -m reproduce",
                                description="Rebuild the paper's figures and tables (training the runs they need).")
    p.add_argument("targets", nargs="*", default=["all"],
                   help="'all', artifact names, or 'status' [names] (show the state of every needed run)")
    p.add_argument("--profile", default="quick", choices=PROFILES, help="scale of the experiments (default quick)")
    p.add_argument("--launcher", default="local", choices=["local", "slurm"], help="where pending runs train")
    p.add_argument("--jobs", type=_jobs, default="auto",
                   help="local: runs trained at once (worker processes), or auto (default): one single-thread "
                        "worker per CPU core while enough runs are pending, one worker on a GPU")
    p.add_argument("--data-dir", default=None, help="offline data folder (default $EMBEDDING_NORMS_DATA)")
    p.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs that would be trained, their view pairs and projected device-hours per "
                        "artifact and in total; train nothing")
    p.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                   help="training seeds of every real-data comparison (0 .. N-1), overriding the profile's `seeds`; "
                        "with 1 seed the real-data checks are 'descriptive (1 seed)'")
    p.add_argument("--force", action="append", default=[], metavar="NAME",
                   help="retrain the runs of artifact NAME (one of the targets, or 'all' = every target) "
                        "from scratch and rebuild it (repeatable)")
    p.add_argument("--retrain-stale", action="store_true",
                   help="retrain from scratch the finished runs trained by other training code (see `status`)")
    p.add_argument("--runs", default=None, help="run store folder (default ./runs or $EMBEDDING_NORMS_RUNS)")
    p.add_argument("--out", default=None, help="output folder (default: repository for quick, outputs/<profile> otherwise)")
    p.add_argument("--device", default=None, help="cpu, cuda, or auto (default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    s = p.add_argument_group("Slurm (with --launcher slurm)")
    s.add_argument("--slurm-config", default=None, help="YAML file with partition, gpus, cpus, mem_gb, time_min, ...")
    s.add_argument("--slurm-partition", default=None)
    s.add_argument("--slurm-gpus", type=int, default=None, help="GPUs per run (default 1)")
    s.add_argument("--slurm-cpus", type=int, default=None, help="CPUs per run (default 8)")
    s.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per run in GB (default 32)")
    s.add_argument("--slurm-time-min", type=int, default=None, help="time limit per run in minutes (default 1440)")
    s.add_argument("--slurm-account", default=None)
    s.add_argument("--slurm-logs", default=None, help="submitit folder for job scripts and logs (default slurm_logs/%%j)")
    return p


def select(targets: list[str], registry: dict[str, Artifact]) -> list[Artifact]:
    """The artifacts named by ``targets`` ('all' = every registered artifact).

    Raises:
        ConfigError: an unknown name (the message suggests the closest names and lists the valid ones).
    """
    if not targets or "all" in targets:
        return list(registry.values())
    for t in targets:
        if t not in registry:
            raise ConfigError(_unknown_artifact(t, registry))
    return [registry[t] for t in targets]


def forced_artifacts(force: list[str], artifacts: list[Artifact], registry: dict[str, Artifact]) -> set[str]:
    """Names of the artifacts whose runs ``--force`` retrains: each NAME must be one of the
    selected ``artifacts``; ``all`` stands for every one of them.

    Raises:
        ConfigError: an unknown name, or an artifact that is not among the targets (it would be
            silently ignored: its runs are not planned).
    """
    targets = [a.name for a in artifacts]
    names: set[str] = set()
    for f in force:
        if f == "all":
            names.update(targets)
        elif f not in registry:
            raise ConfigError(f"--force: {_unknown_artifact(f, registry)}".replace("choose from: all, status, ",
                                                                                   "choose from: all, "))
        elif f not in targets:
            raise ConfigError(f"--force {f}: {f} is not among the targets ({', '.join(targets)}); "
                              f"add it to the targets or use --force all")
        else:
            names.add(f)
    return names


def _unknown_artifact(name: str, registry: dict[str, Artifact]) -> str:
    close = difflib.get_close_matches(name, list(registry), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown artifact {name!r}{hint}; choose from: all, status, {', '.join(registry)}"


def train_images(cfg) -> int:
    """Number of training images of a run (subset, class holdout, imbalance): exact where the
    dataset's size is a known fact (:func:`embedding_norms.data.expected_train_size`), else approximate."""
    from embedding_norms.data import IMBALANCE_BASE, SPECS, expected_train_size, exponential_counts

    exact = expected_train_size(cfg.data)
    if exact is not None:
        return exact
    spec = SPECS[cfg.data.dataset]
    k = spec.num_classes
    full = spec.sizes.get("train") or 100_000
    if cfg.data.classes is not None:  # the class selection comes first, then the subset
        full, k = full * len(cfg.data.classes) // k, len(cfg.data.classes)
    n = min(cfg.data.train_size or full, full)
    if cfg.data.imbalance != "none":
        n = sum(exponential_counts(n // k, k, IMBALANCE_BASE.get(cfg.data.dataset, 1.5)))
    return n


def estimate(spec: RunSpec) -> tuple[str, int, Optional[float]]:
    """Rough cost of a run: a description, its view pairs (:func:`embedding_norms.speed.run_pairs`: the
    images of its optimizer steps x epochs, as in the cost table), and minutes on one core of the 2-core
    development CPU (one 1-thread worker) when a measured rate is known (None otherwise)."""
    c = spec.cfg
    n = train_images(c)
    pairs = run_pairs(c, n)
    width = c.model.width if c.model.backbone == "resnet18_narrow" else 64
    rate = CPU_PAIRS_PER_SECOND.get((c.model.backbone, width, c.model.stem))
    minutes = pairs / rate / 60 if rate and c.data.image_size <= 32 else None
    cpu = f", ~{minutes:.1f} min on one core of the 2-core dev CPU" if minutes is not None else ""
    return f"{c.train.epochs} epochs x {n} images: {pairs:,} view pairs{cpu}", pairs, minutes


def code_origins() -> dict[str, Path]:
    """{role: package folder} of the code this process runs: the artifact code (``reproduce``), the
    library (``embedding_norms``) and, when one was started (``python reproduce/NAME.py``), the
    per-artifact script's folder (it can belong to another checkout than the ``reproduce`` imported)."""
    origins = {"artifact code (reproduce)": ARTIFACT_DIR, "library (embedding_norms)": PACKAGE_DIR}
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if script and Path(script).resolve().parent.name == "reproduce" and Path(script).resolve().parent != ARTIFACT_DIR:
        origins["artifact script"] = Path(script).resolve().parent
    return origins


def outputs_elsewhere(root: Path, cwd: Optional[Path] = None) -> Optional[str]:
    """The first line of a build whose outputs go to another folder than the working directory's
    checkout (issue 23), or None when they go into it."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    here = enclosing_checkout(cwd)
    root = Path(root).resolve()
    if here is not None and (root == here or here in root.parents):
        return None
    where = f"not into the working directory's checkout {here}" if here else \
        f"the working directory {cwd.resolve()} is not a checkout of the repository"
    return f"outputs go to {root} ({where})"


def _print_skipped(artifacts: list[Artifact], specs: dict[str, list[RunSpec]]) -> None:
    """One line per distinct reason, with the runs it affects."""
    reasons: dict[str, list[str]] = {}
    for a in artifacts:
        for s in specs[a.name]:
            if s.cfg is None:
                reasons.setdefault(s.skipped, []).append(f"{a.name}:{s.label}")
    for why, which in reasons.items():
        print(f"  skipped ({len(which)} runs, e.g. {which[0]}): {why}")


def check_sizes(artifacts: list[Artifact], specs: dict[str, list[RunSpec]], profile: str) -> None:
    """Refuse, while planning, a run whose sizes do not fit its training set (fewer images than
    one optimizer step, ``train.probe_size`` or ``eval.knn_k`` larger than the training set);
    the data sizes are known from the dataset facts (:func:`embedding_norms.data.check_run_sizes`).

    Raises:
        ConfigError: naming the artifact, the run, the key and the profile file to fix.
    """
    for a in artifacts:
        for s in specs[a.name]:
            if s.cfg is None:
                continue
            try:
                check_run_sizes(s.cfg)
            except ConfigError as exc:
                raise ConfigError(f"profile {profile}: {a.name} run {s.label}: {exc} "
                                  f"(fix configs/profiles/{profile}.yaml)") from None


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    """Slurm resources from ``--slurm-config`` and the ``--slurm-*`` flags (flags win).

    Raises:
        ConfigError: an unreadable or invalid ``--slurm-config`` file.
    """
    kw = dict(partition=args.slurm_partition, gpus=args.slurm_gpus, cpus=args.slurm_cpus,
              mem_gb=args.slurm_mem_gb, time_min=args.slurm_time_min, account=args.slurm_account,
              folder=args.slurm_logs)
    if args.slurm_config:
        return SlurmOptions.from_yaml(args.slurm_config, **kw)
    return SlurmOptions(**{k: v for k, v in kw.items() if v is not None})


def unwritable_outputs(out: OutputDirs, store: Optional[RunStore], slurm_folder: Optional[str]) -> Optional[str]:
    """Why an output location cannot be written, or None when all can (checked before training).

    Checks the figure, table and result folders and REPORT.md's folder; the run store only when
    runs will be trained (``store`` given: reading a finished store needs no write access); the
    Slurm log folder (``%j`` cut off) when runs go to Slurm.
    """
    places = [("--out", out.figures), ("--out", out.tables), ("--out", out.results), ("--out", out.report.parent)]
    if store is not None:
        places.append(("--runs", store.root))
    if slurm_folder:
        places.append(("--slurm-logs", Path(slurm_folder.split("%")[0] or ".")))
    for flag, place in places:
        bad = unwritable_folder(place)
        if bad is not None:
            what = "is not a folder" if bad.exists() and not bad.is_dir() else "is not writable"
            return (f"{bad} {what}, so {place} cannot be written; nothing was trained. Make it writable "
                    f"or choose another folder with {flag}")
    return None


def _print_standins(needed: dict[str, RunSpec]) -> None:
    """Say loudly when runs train on generated stand-in images instead of a real dataset."""
    standins = sorted({s.cfg.data.dataset for s in needed.values() if s.cfg.data.standin})
    if standins:
        n = sum(s.cfg.data.standin for s in needed.values())
        print(f"stand-in data: {n} run(s) train on generated stand-in images for {', '.join(standins)} "
              f"(not available here); their numbers say nothing about the paper", flush=True)


def _read_json(path: Path) -> Optional[dict]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _on_sigterm(signum, frame):  # turn SIGTERM into a clean interruption (runs resume later)
    raise KeyboardInterrupt(f"signal {signum}")


def planned_configs(profile: str, data_dir: Optional[str] = None) -> list:
    """Every distinct run config of ``python -m reproduce all --profile <profile>``, datasets that
    are not available planned as generated stand-ins (for cost estimates and the paper-shape test)."""
    planned = _plan(list(load_artifacts().values()), Plan(profile, data_dir, False, strict=False, standins=True))
    return list({s.cfg.hash(): s.cfg for pl in planned.values() for s in pl.specs.values() if s.cfg is not None}.values())


def _plan(artifacts: list[Artifact], plan: Plan) -> dict[str, Planned]:
    """Plan every artifact once: validated parameters and keyed runs (before any compute).

    Raises:
        ConfigError: an invalid run config or artifact parameter (named with its profile key).
        DataError: a required dataset is missing or corrupt.
    """
    return {a.name: plan_artifact(a, plan) for a in artifacts}


def _print_status(args, artifacts: list[Artifact], specs: dict[str, list[RunSpec]], store: RunStore) -> int:
    """``status``: one line per needed run (state, folder, Slurm job, stale or damaged files)."""
    print(f"profile {args.profile}; run store {store.root}")
    for a in artifacts:
        for s in specs[a.name]:
            if s.cfg is None:
                print(f"  {a.name:24s} {s.label:28s} skipped   {s.skipped}")
                continue
            st = store.status(s.cfg)
            extra = f" (Slurm job {st.slurm_job_id})" if st.slurm_job_id else ""
            extra += " (retried by the next call)" if st.state == "failed" else ""
            extra += " (stale: trained by other training code)" if store.stale(s.cfg) else ""
            extra += "".join(f" (damaged: {p})" for p in store.verify(s.cfg))
            print(f"  {a.name:24s} {s.label:28s} {st.state:9s} {store.path(s.cfg)}{extra} {st.reason}")
    return 0


def _print_dry_run(args, artifacts, needed: dict[str, RunSpec], pending: list[RunSpec], forced: dict[str, RunSpec],
                   store: RunStore, specs: dict[str, list[RunSpec]]) -> int:
    """``--dry-run``: the runs that would be trained, their cost, and per artifact and in total the
    runs, seeds, view pairs and projected device-hours (``reproduce.costs``)."""
    todo = {s.cfg.hash(): s for s in pending} | forced
    print(f"profile {args.profile}: {len(needed)} distinct runs needed by {len(artifacts)} artifacts; "
          f"{len(todo)} to train ({len(needed) - len(pending)} already finished in {store.root})")
    costs = [estimate(s) for s in todo.values()]
    for s, (text, _, _) in zip(todo.values(), costs):
        print(f"  {s.cfg.name:44s} {s.label:28s} {text}")
    if costs:
        minutes = [m for _, _, m in costs if m is not None]
        jobs = _local_jobs(args, len(costs))
        print(f"total: {sum(p for _, p, _ in costs):,} view pairs"
              + (f", ~{sum(minutes):.0f} run-minutes on one core of the 2-core dev CPU ({jobs} worker(s) side by "
                 f"side: ~{sum(minutes) / jobs:.0f} min wall; BYOL's micro-batch 64 and saved embeddings take longer)"
                 if len(minutes) == len(costs) else ""))
        print(hours_line([(s.cfg, train_images(s.cfg)) for s in todo.values()], resolve_device(args.device),
                         args.profile))
    per_artifact = {a.name: [s.cfg for s in specs[a.name] if s.cfg is not None] for a in artifacts}
    for line in dry_run_lines(per_artifact, [s.cfg for s in todo.values()], resolve_device(args.device),
                              args.profile, train_images):
        print(line)
    if any(s.cfg is None for a in artifacts for s in specs[a.name]):  # what the skipped runs would cost
        every = _plan(artifacts, Plan(args.profile, args.data_dir, False, strict=False, n_seeds=args.seeds,
                                      standins=True))
        extra = {s.cfg.hash(): s.cfg.replace({"data": {"standin": False}}) for pl in every.values()
                 for s in pl.specs.values() if s.cfg is not None and s.cfg.data.standin and s.cfg.hash() not in needed}
        print(missing_data_line(list(extra.values()), train_images))
    return 0


def _clear_forced(forced: dict[str, RunSpec], store: RunStore) -> Optional[str]:
    """Delete the folders of the runs to retrain from scratch; an error message if one is in use."""
    for s in forced.values():
        d = store.path(s.cfg)
        if d.exists():
            if is_locked(d):
                return f"--force: {d} is being trained by another process"
            shutil.rmtree(d)
    return None


def _local_jobs(args, n_pending: int) -> int:
    """Local training processes for ``n_pending`` runs: ``--jobs``, or the default layout for ``auto``."""
    if args.jobs != "auto":
        return args.jobs
    return default_layout(n_pending, os.cpu_count() or 1, str(resolve_device(args.device)))[0]


def _train(args, pending: list[RunSpec], needed: dict[str, RunSpec], store: RunStore, data_dir, plan: Plan,
           slurm) -> None:
    """Train the pending runs (locally with the default worker layout, or as a Slurm array)."""
    if not pending:
        print(f"all {len(needed)} needed run(s) already trained in {store.root}", flush=True)
        return
    print(f"training {len(pending)} run(s) with the {args.launcher} launcher "
          f"({len(needed) - len(pending)} reused from {store.root})", flush=True)
    jobs = _local_jobs(args, len(pending))
    results = execute([s.cfg for s in pending], store, args.launcher, jobs, data_dir,
                      plan.download, args.device, slurm, progress=not args.no_progress)
    for r in results:
        if r.state != "done":
            print(f"  run {r.name}: {r.state}: {r.reason}" + (f" (log: {r.log})" if r.log and Path(r.log).exists() else ""))


def _build_all(artifacts: list[Artifact], planned: dict[str, Planned], store: RunStore, out: OutputDirs,
               data_dir) -> tuple[list[str], list]:
    """Build every artifact from its plan; returns the names of those that failed and the results."""
    failed, built = [], []
    for a in artifacts:
        res = build(planned[a.name], store, out, data_dir)
        write_result(res, out.results)
        built.append(res)
        if res.status == "failed":
            failed.append(a.name)
        print(f"  {a.name:24s} {res.status:8s} {res.seconds:6.1f} s"
              + (f"  ERROR: {res.error.strip().splitlines()[-1]}" if res.error else ""), flush=True)
    return failed, built


def _write_report(args, whole_paper: bool, registry, needed: dict[str, RunSpec], store: RunStore, out: OutputDirs,
                  timing: dict[str, float]) -> None:
    """``results/_runs.json`` (for the whole paper: what its runs cost), the summary figure
    (``figures/summary.png``, :func:`embedding_norms.summary_figure.draw_summary`) and REPORT.md."""
    if whole_paper:
        done = [store.status(s.cfg) for s in needed.values()]
        write_json(out.results / "_runs.json", {
            "runs": len(done), "finished": sum(st.state == "done" for st in done),
            "train_seconds_total": round(sum(st.train_seconds or 0.0 for st in done), 1),
            "train_seconds_per_run": {s.cfg.name: store.status(s.cfg).train_seconds for s in needed.values()},
            "last_call": {"total_s": round(timing["total"], 1), "training_s": round(timing["training"], 1),
                          "building_s": round(timing["building"], 1)}})
    env = {**environment(), "code": describe_code(code_origins())}
    results = [r for r in load_results(out.results) if r.profile == args.profile]
    draw_summary(results, out.figures / "summary", args.profile)  # figures/summary.png, linked at the top of REPORT.md
    render_report(results, args.profile, out.report, env=env, timing=timing, order=list(registry),
                  runs_summary=_read_json(out.results / "_runs.json"), data_dir=args.data_dir)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 a run or artifact failed or a run is damaged,
    2 bad input or code of two checkouts, 130 interrupted).

    Phases: check that all the code comes from one checkout (:func:`embedding_norms.provenance.check_one_checkout`),
    select and plan every artifact once (all validation before any compute), then ``status`` /
    ``--dry-run`` stop; else train what is pending, build every artifact, write REPORT.md.
    """
    args = build_parser().parse_args(argv)
    t_start = time.time()
    try:  # before anything is planned, trained or written (issue 23)
        check_one_checkout(code_origins())
    except MixedCheckoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    registry = load_artifacts()
    status_only = "status" in args.targets
    try:
        artifacts = select([t for t in args.targets if t != "status"] or ["all"], registry)
        forced_names = forced_artifacts(args.force, artifacts, registry)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = RunStore(args.runs)
    out = OutputDirs.for_profile(args.profile, args.out)

    # ---- 1. plan (all validation before any compute)
    try:
        root = check_data_dir(args.data_dir, True if args.download else None)
        data_dir = str(root) if root else None
        if not status_only and not args.dry_run:
            resolve_device(args.device)
        plan = Plan(args.profile, data_dir, True if args.download else None, strict=not status_only,
                    n_seeds=args.seeds)
        planned = _plan(artifacts, plan)
        specs = {name: list(pl.specs.values()) for name, pl in planned.items()}
        if not status_only:
            check_sizes(artifacts, specs, plan.profile)
        slurm = slurm_options(args) if args.launcher == "slurm" and not status_only else None
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    needed = {s.cfg.hash(): s for a in artifacts for s in specs[a.name] if s.cfg is not None}
    if status_only:
        return _print_status(args, artifacts, specs, store)

    elsewhere = None if args.dry_run else outputs_elsewhere(out.root)
    if elsewhere:
        print(elsewhere, flush=True)
    _print_skipped(artifacts, specs)
    _print_standins(needed)
    pending = [s for s in needed.values() if not store.status(s.cfg).finished]
    forced = {s.cfg.hash(): s for a in artifacts if a.name in forced_names for s in specs[a.name] if s.cfg is not None}
    if args.retrain_stale:  # finished runs of other training code: retrained from scratch like --force
        forced.update({c.hash(): needed[c.hash()] for c in stale_runs([s.cfg for s in needed.values()], store)})
    if args.dry_run:
        return _print_dry_run(args, artifacts, needed, pending, forced, store, specs)
    blocked = (unwritable_outputs(out, store if (pending or forced) else None,
                                  slurm.folder if slurm and (pending or forced) else None)
               or _clear_forced(forced, store))
    if blocked:
        print(f"error: {blocked}", file=sys.stderr)
        return 2
    pending = [s for s in needed.values() if not store.status(s.cfg).finished]
    retried = [s for s in pending if store.status(s.cfg).state == "failed"]
    if retried:
        print(f"retrying {len(retried)} run(s) that failed before, e.g. {retried[0].cfg.name}: "
              f"{store.status(retried[0].cfg).reason}", flush=True)

    # ---- 2. train, 3. build
    os.environ[ARTIFACT_CODE_ENV] = str(ARTIFACT_DIR)  # named in the provenance.json of the runs trained
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    t_train = time.time()
    try:
        _train(args, pending, needed, store, data_dir, plan, slurm)
        t_build = time.time()
        failed_artifacts, built = _build_all(artifacts, planned, store, out, data_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs and outputs are kept; the next call continues where this one stopped",
              file=sys.stderr)
        return 130
    except (ConfigError, DataError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, old)

    # ---- 4. report
    timing = {"total": time.time() - t_start, "training": t_build - t_train, "building": time.time() - t_build}
    _write_report(args, len(artifacts) == len(registry), registry, needed, store, out, timing)
    print(f"done in {time.time() - t_start:.0f} s: figures in {out.figures}, tables in {out.tables}, "
          f"results in {out.results}, report {out.report}")
    damaged = runs_usability(built)["damaged"]
    failed_runs = [s.cfg.name for s in needed.values() if not store.status(s.cfg).finished]
    if failed_runs:
        print(f"error: {len(failed_runs)} run(s) did not finish: {', '.join(failed_runs[:3])}"
              f"{', ...' if len(failed_runs) > 3 else ''} (logs above and in `python -m reproduce status`; the next "
              f"call retries them)", file=sys.stderr)
    if failed_artifacts:
        print(f"error: {len(failed_artifacts)} artifact(s) failed to build: {', '.join(failed_artifacts)} "
              f"(traceback in {out.report})", file=sys.stderr)
    if damaged:  # left out of every check; the fix is the last thing printed (issue 23)
        print(f"error: {len(damaged)} damaged run(s) left out of the checks (REPORT.md's header lists them):",
              file=sys.stderr)
        for d in damaged:
            print(f"  {d['name']}: {'; '.join(d['problems'])}\n    fix: {d['fix']}", file=sys.stderr)
    return 1 if failed_runs or failed_artifacts or damaged else 0
