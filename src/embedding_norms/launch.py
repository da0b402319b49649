"""Execute pending training runs: in this process, in local worker processes, or on Slurm.

* ``local`` with ``jobs=1`` trains the runs one after the other in this process (datasets
  are decoded once and shared); with ``jobs>1`` it uses that many worker processes, each with
  ``cpu_count // jobs`` torch threads.
* ``slurm`` submits the runs as one Slurm job array through submitit, waits with a progress
  display and returns. Each task is a :class:`TrainTask` (``submitit.helpers.Checkpointable``):
  on preemption or timeout submitit requeues it and :func:`~embedding_norms.train.train`
  resumes from the run's newest checkpoint. The Slurm job id is recorded in ``status.json``.

Every launcher is safe to run twice at once on one run store: a run is trained only by the
process holding its lock; the others skip it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from tqdm.auto import tqdm

from .config import ConfigError, RunConfig, from_dict
from .runs import RunLocked, RunStore, is_locked

SLURM_KEYS = {"partition": str, "gpus": int, "cpus": int, "mem_gb": float, "time_min": int,
              "array_parallelism": int, "account": str, "qos": str, "constraint": str}


@dataclass
class SlurmOptions:
    """Resources of each Slurm task (one training run).

    Attributes:
        partition, account, qos, constraint: passed to sbatch when set.
        gpus: GPUs per task (0 on CPU-only clusters).
        cpus: CPUs per task.
        mem_gb: memory per task.
        time_min: time limit per task (minutes); a task hitting it is requeued and resumes.
        array_parallelism: at most this many array tasks run at once.
        folder: where submitit writes job scripts and logs (``%j`` = job id).
    """

    partition: Optional[str] = None
    gpus: int = 1
    cpus: int = 8
    mem_gb: float = 32.0
    time_min: int = 24 * 60
    array_parallelism: int = 32
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    folder: str = "slurm_logs/%j"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> "SlurmOptions":
        """Options from a YAML file (keys of ``SLURM_KEYS``), then non-None ``overrides``.

        Raises:
            ConfigError: a missing or unreadable file, invalid YAML, a file that is not a mapping,
                an unknown key or a wrong type (the message names the file and the fix).
        """
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"--slurm-config {path}: cannot read it ({exc.strerror or exc}); "
                              f"give the path of a YAML file with {', '.join(sorted(SLURM_KEYS))}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--slurm-config {path} is not valid YAML ({' '.join(str(exc).split())}); "
                              f"fix the file") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--slurm-config {path} must hold a mapping of Slurm options "
                              f"(e.g. 'partition: gpu'), got a {type(data).__name__}")
        for k, v in data.items():
            if k not in SLURM_KEYS:
                raise ConfigError(f"{path}: unknown Slurm option {k!r}; valid: {', '.join(sorted(SLURM_KEYS))}")
            if not isinstance(v, SLURM_KEYS[k]) and not (SLURM_KEYS[k] is float and isinstance(v, int)):
                raise ConfigError(f"{path}: Slurm option {k} must be {SLURM_KEYS[k].__name__}, got {v!r}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


@dataclass
class LaunchResult:
    """Outcome of one run: final state, reason, and where its log is."""

    name: str
    state: str
    reason: str = ""
    log: Optional[str] = None
    slurm_job_id: Optional[str] = None


def default_layout(n_pending: int, cpu_count: int, device: str = "cpu") -> tuple[int, int]:
    """The local worker layout ``(jobs, torch threads per job)`` for ``n_pending`` runs.

    On the CPU, one single-thread worker per core while at least as many runs are pending
    (measured on the 2-core development CPU: two 1-thread processes train more pairs per second
    in total than one 2-thread process; README "Precision and speed"); with fewer runs, the
    cores are shared out among them. On a GPU (``device`` ``cuda``/``cuda:N``), one worker with
    every core, as the runs share the one device.

    Raises:
        ValueError: ``n_pending < 0`` or ``cpu_count < 1``.
    """
    if n_pending < 0 or cpu_count < 1:
        raise ValueError(f"default_layout needs n_pending >= 0 and cpu_count >= 1, got {n_pending}, {cpu_count}")
    if str(device).startswith("cuda"):
        return 1, cpu_count
    jobs = max(1, min(n_pending, cpu_count))
    return jobs, max(1, cpu_count // jobs)


def _train_one(cfg_dict: dict, store_root: str, data_dir: Optional[str], download: Optional[bool],
               device: Optional[str], threads: Optional[int], progress: bool,
               extra_status: Optional[dict] = None, pid_dir: Optional[str] = None) -> LaunchResult:
    import torch

    from .train import train

    if pid_dir:  # tell the parent which worker process trains which run (see _execute_pool)
        (Path(pid_dir) / cfg_dict["_hash"]).write_text(str(os.getpid()))
        cfg_dict = {k: v for k, v in cfg_dict.items() if k != "_hash"}
    if threads:
        torch.set_num_threads(threads)
    cfg = from_dict(cfg_dict, source="launch")
    store = RunStore(store_root)
    try:
        st = train(cfg, store, data_dir, download, device, progress=progress, extra_status=extra_status)
    except RunLocked as exc:
        return LaunchResult(cfg.name, "running", str(exc))
    return LaunchResult(cfg.name, st.state, st.reason, st.log or str(store.path(cfg) / "train.log"), st.slurm_job_id)


try:  # submitit is a dependency; the import is guarded so that library code imports without it
    import submitit

    class TrainTask(submitit.helpers.Checkpointable):
        """A Slurm array task: train one run; requeued (and resumed) on preemption/timeout."""

        def __init__(self, store_root: str, data_dir: Optional[str], download: Optional[bool], device: Optional[str]):
            self.store_root, self.data_dir, self.download, self.device = store_root, data_dir, download, device

        def __call__(self, cfg_dict: dict) -> LaunchResult:
            env = submitit.JobEnvironment()
            return _train_one(cfg_dict, self.store_root, self.data_dir, self.download, self.device, None,
                              progress=False, extra_status={"slurm_job_id": str(env.job_id)})
except ImportError:  # pragma: no cover
    submitit = None  # type: ignore


def stale_runs(cfgs: list[RunConfig], store: RunStore) -> list[RunConfig]:
    """The finished runs of ``cfgs`` that were trained by other training code than this process
    runs (:func:`embedding_norms.provenance.is_stale`), each once."""
    unique = {c.hash(): c for c in cfgs}
    return [c for c in unique.values() if store.status(c).finished and store.stale(c)]


def execute(cfgs: list[RunConfig], store: RunStore, launcher: str = "local", jobs: int = 1,
            data_dir: Optional[str] = None, download: Optional[bool] = None, device: Optional[str] = None,
            slurm: Optional[SlurmOptions] = None, progress: bool = True,
            retrain_stale: bool = False) -> list[LaunchResult]:
    """Train every run of ``cfgs`` that is not finished yet.

    With ``retrain_stale``, finished runs trained by other training code (:func:`stale_runs`) are
    deleted and trained again from scratch (an unfinished stale run always restarts from scratch:
    its checkpoints are refused across code). A stale run locked by another process is left alone.

    Args:
        cfgs: runs to train (duplicates by hash are trained once).
        store: the run store.
        launcher: ``local`` or ``slurm``.
        jobs: local worker processes (1 = in this process).
        slurm: resources for ``slurm``.

    Returns:
        one :class:`LaunchResult` per distinct run (finished runs included, as they are).

    Raises:
        ValueError: unknown launcher.
        RuntimeError: ``slurm`` requested but no Slurm (``sbatch``) is reachable.
    """
    unique = {c.hash(): c for c in cfgs}
    results: dict[str, LaunchResult] = {}
    todo = []
    if retrain_stale:
        for cfg in stale_runs(cfgs, store):
            if not is_locked(store.path(cfg)):
                shutil.rmtree(store.path(cfg))
    for h, cfg in unique.items():
        st = store.status(cfg)
        if st.finished:
            results[h] = LaunchResult(cfg.name, st.state, st.reason, st.log, st.slurm_job_id)
        else:
            store.ensure(cfg)
            todo.append(cfg)
    if not todo:
        return list(results.values())
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    if launcher == "local":
        if jobs <= 1:
            for i, cfg in enumerate(tqdm(todo, desc="runs", disable=not progress, dynamic_ncols=True)):
                if not progress:  # plain log lines instead of progress bars
                    print(f"[{i + 1}/{len(todo)}] training {cfg.name}", flush=True)
                results[cfg.hash()] = r = _train_one(cfg.to_dict(), str(store.root), data_dir, download, device,
                                                     None, progress)
                if not progress:
                    print(f"[{i + 1}/{len(todo)}] {cfg.name}: {r.state} {r.reason}", flush=True)
        else:
            results.update(_execute_pool(todo, store, jobs, data_dir, download, device, progress))
    elif launcher == "slurm":
        results.update(_execute_slurm(todo, store, data_dir, download, device, slurm or SlurmOptions(), progress))
    else:
        raise ValueError(f"unknown launcher {launcher!r}; choose local or slurm")
    # runs that another process was training when we reached them: wait for that process
    for h, r in list(results.items()):
        if r.state == "running":
            cfg = unique[h]
            while store.status(cfg).locked:
                time.sleep(1)
            st = store.status(cfg)
            results[h] = LaunchResult(cfg.name, st.state, st.reason, st.log, st.slurm_job_id)
    return list(results.values())


def _execute_pool(todo: list[RunConfig], store: RunStore, jobs: int, data_dir, download, device,
                  progress: bool) -> dict[str, LaunchResult]:
    """Train ``todo`` in ``jobs`` worker processes, at most ``jobs`` runs at a time.

    A worker that dies (``kill -9``, the out-of-memory killer) breaks the whole
    ``ProcessPoolExecutor``: every run in it is aborted. Then only the run of the dead worker is
    marked ``failed``; the runs aborted with it (their workers were terminated by the pool) are
    trained again in a new pool (resuming from their checkpoints), as are the runs not started yet.
    A run whose worker dies twice without being identified is marked failed too (no endless loop).
    """
    threads = default_layout(jobs, os.cpu_count() or 1)[1]
    results: dict[str, LaunchResult] = {}
    queue = list(todo)
    losses: dict[str, int] = {}  # how often a run was aborted by a broken pool
    bar = tqdm(total=len(todo), desc="runs", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="embedding-norms-workers-") as pid_dir:
        while queue:
            pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_signals)
            procs: dict[int, Any] = {}
            inflight: dict[Any, RunConfig] = {}
            lost: list[RunConfig] = []
            try:
                while (queue or inflight) and not lost:
                    while queue and len(inflight) < jobs:  # no run waits inside the pool: a break loses none
                        c = queue.pop(0)
                        args = ({**c.to_dict(), "_hash": c.hash()}, str(store.root), data_dir, download, device,
                                threads, False, None, pid_dir)
                        inflight[pool.submit(_train_one, *args)] = c
                        procs.update(getattr(pool, "_processes", None) or {})
                    finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        c = inflight.pop(fut)
                        try:
                            results[c.hash()] = fut.result()
                        except BrokenProcessPool:
                            lost.append(c)
                            continue
                        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be sent back
                            results[c.hash()] = _failed(c, store, f"{type(exc).__name__}: {exc}")
                        bar.update(1)
                    if lost:  # every other run in the pool is aborted with it
                        lost += [inflight[f] for f in inflight]
            except BaseException:  # interrupted (SIGTERM/Ctrl-C): start no new run, stop the running ones
                _stop_workers(pool)
                for c in inflight.values():
                    _remove_temporaries(store.path(c))
                bar.close()
                raise
            pool.shutdown(wait=True)
            for c in lost:
                dead = _dead_worker(Path(pid_dir) / c.hash(), procs)
                losses[c.hash()] = losses.get(c.hash(), 0) + 1
                if dead is not None or losses[c.hash()] >= 2:
                    why = (f"its worker process (pid {dead[0]}) died ({dead[1]}; e.g. killed for lack of memory)"
                           if dead else "its worker process died twice while training it")
                    results[c.hash()] = _failed(c, store, why)
                    bar.update(1)
                else:  # aborted with the dead worker, or not started: train it again
                    (Path(pid_dir) / c.hash()).unlink(missing_ok=True)
                    queue.insert(0, c)
    bar.close()
    return results


def _dead_worker(pid_file: Path, procs: dict[int, Any]) -> Optional[tuple[int, str]]:
    """(pid, how it ended) of the worker that trained a run, if that worker died by itself.

    Workers the pool terminated after another one died end with SIGTERM; those runs were only
    aborted. A run that never reached a worker has no pid file.
    """
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    proc = procs.get(pid)
    code = getattr(proc, "exitcode", None)
    if code is None or code == -signal.SIGTERM:
        return None
    return pid, (f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}")


def _failed(cfg: RunConfig, store: RunStore, reason: str) -> LaunchResult:
    """Record a run that failed outside :func:`~embedding_norms.train.train` (its worker died), so
    that the next call retries it; the log is named only if the run wrote one."""
    log = store.path(cfg) / "train.log"
    log_name = str(log) if log.exists() else None
    if not store.status(cfg).locked:
        store.set_status(cfg, "failed", reason, log=log_name)
    return LaunchResult(cfg.name, "failed", reason, log_name)


def _worker_signals() -> None:
    """Initializer of local worker processes: SIGTERM kills the worker at once (default action, not
    the runner's handler inherited through fork, which would let the pool's worker loop go on to the
    next queued run); Ctrl-C is left to the parent, which stops the workers and removes their
    temporary files (:func:`_remove_temporaries`)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _remove_temporaries(run_dir: Path) -> None:
    """Delete the ``.<name>.*.tmp*`` files of atomic writes (:func:`embedding_norms.io.atomic_path`)
    a killed worker left in a run folder; the files they were to replace are intact."""
    for tmp in list(run_dir.rglob(".*.tmp*")) if run_dir.exists() else []:
        tmp.unlink(missing_ok=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel queued runs and terminate the worker processes of ``pool`` (SIGKILL after 10 s).

    A terminated worker leaves its run ``running`` with a free lock, which the store reports as
    interrupted; the next call resumes it from its newest checkpoint. Python 3.11's executor has
    no public way to stop running tasks, hence ``_processes`` (``terminate_workers`` in 3.14).
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


def slurm_available() -> tuple[bool, str]:
    """Whether ``sbatch``/``squeue``/``sacct`` are reachable, and if not why."""
    import shutil
    import subprocess

    for cmd in ("sbatch", "squeue", "sacct"):
        if shutil.which(cmd) is None:
            return False, f"{cmd} not found on PATH"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"sinfo failed: {exc}"
    if out.returncode != 0 or not out.stdout.strip():
        return False, f"no Slurm partition answers (sinfo: {out.stderr.strip() or 'empty'})"
    return True, ""


def _execute_slurm(todo: list[RunConfig], store: RunStore, data_dir, download, device, opts: SlurmOptions,
                   progress: bool) -> dict[str, LaunchResult]:
    ok, why = slurm_available()
    if not ok:
        raise RuntimeError(f"--launcher slurm: {why}. Start Slurm or use --launcher local")
    ex = submitit.AutoExecutor(folder=opts.folder, cluster="slurm")
    params: dict[str, Any] = dict(timeout_min=opts.time_min, cpus_per_task=opts.cpus, mem_gb=opts.mem_gb,
                                  slurm_array_parallelism=opts.array_parallelism, name="embedding-norms")
    if opts.gpus:
        params["gpus_per_node"] = opts.gpus
    if opts.partition:
        params["slurm_partition"] = opts.partition
    extra = {k: v for k, v in (("account", opts.account), ("qos", opts.qos), ("constraint", opts.constraint)) if v}
    extra.update(opts.extra)
    if extra:
        params["slurm_additional_parameters"] = extra
    ex.update_parameters(**params)
    task = TrainTask(str(store.root), data_dir, download, device)
    jobs = ex.map_array(task, [c.to_dict() for c in todo])
    for cfg, job in zip(todo, jobs):
        store.set_status(cfg, None, None, slurm_job_id=str(job.job_id), log=str(job.paths.stdout))
    pending = dict(zip([c.hash() for c in todo], zip(todo, jobs)))
    try:
        return _wait_slurm(pending, store, progress)
    except BaseException:  # interrupted: cancel what was submitted, so a re-run does not train a run twice
        _cancel_slurm(jobs)
        raise


def _cancel_slurm(jobs: list) -> None:
    """Cancel (``scancel``, through submitit's ``job.cancel``) every task of ``jobs`` not finished
    yet and say so. Cancelled runs keep their checkpoints; the next call resumes them."""
    def unfinished(job) -> bool:
        try:
            return not job.done()
        except Exception:  # noqa: BLE001 - state unknown (sacct lag): cancel it to be safe
            return True

    open_jobs = [j for j in jobs if unfinished(j)]
    if not open_jobs:
        return
    for j in open_jobs:
        try:
            j.cancel(check=False)
        except Exception:  # noqa: BLE001 - best effort while interrupted; the message below says which
            pass
    array = jobs[0].job_id.split("_")[0]
    print(f"cancelled {len(open_jobs)} unfinished task(s) of Slurm array {array} (scancel); their runs "
          f"resume from their checkpoints in the next call", file=sys.stderr, flush=True)


def _wait_slurm(pending: dict, store: RunStore, progress: bool) -> dict[str, LaunchResult]:
    """Poll the Slurm tasks of ``pending`` (hash -> (cfg, job)) until all are done; their results."""
    results: dict[str, LaunchResult] = {}
    first = next(iter(pending.values()))[1]
    with tqdm(total=len(pending), desc=f"Slurm array {first.job_id.split('_')[0]}", disable=not progress) as bar:
        while pending:
            for h, (cfg, job) in list(pending.items()):
                if job.done():
                    try:
                        res = job.result()
                    except Exception as exc:  # noqa: BLE001 - a failed task is reported with its log
                        res = LaunchResult(cfg.name, "failed", f"Slurm job {job.job_id} failed: "
                                           f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                                           str(job.paths.stderr), str(job.job_id))
                        store.set_status(cfg, "failed", res.reason, log=res.log, slurm_job_id=str(job.job_id))
                    results[h] = res
                    del pending[h]
                    bar.update(1)
            if pending:
                time.sleep(2)
    return results
