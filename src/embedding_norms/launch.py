"""Execute pending training runs: in this process, in local worker processes, or on Slurm.

* ``local`` with ``jobs=1`` trains the runs one after the other in this process (datasets
  are decoded once and shared); with ``jobs>1`` it uses that many worker processes, each with
  ``cpu_count // jobs`` torch threads.
* ``slurm`` submits the runs as one Slurm job array through submitit, waits with a progress
  display and returns. Each task is a :class:`TrainTask` (``submitit.helpers.Checkpointable``):
  on preemption or timeout submitit requeues it and :func:`~embedding_norms.train.train`
  resumes from the run's newest checkpoint. The Slurm job id is recorded in the run's
  ``status.json``.

Every launcher is safe to run twice at once on one run store: a run is trained only by the
process holding its lock; the others skip it.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from tqdm.auto import tqdm

from .config import ConfigError, RunConfig, from_dict
from .runs import RunLocked, RunStore

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
            ConfigError: unknown key or wrong type in the file.
        """
        data = yaml.safe_load(Path(path).read_text()) or {}
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
               extra_status: Optional[dict] = None) -> LaunchResult:
    import torch

    from .train import train

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


def execute(cfgs: list[RunConfig], store: RunStore, launcher: str = "local", jobs: int = 1,
            data_dir: Optional[str] = None, download: Optional[bool] = None, device: Optional[str] = None,
            slurm: Optional[SlurmOptions] = None, progress: bool = True) -> list[LaunchResult]:
    """Train every run of ``cfgs`` that is not finished yet.

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
            threads = default_layout(jobs, os.cpu_count() or 1)[1]
            pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_signals)
            try:
                futs = {pool.submit(_train_one, c.to_dict(), str(store.root), data_dir, download, device, threads,
                                    False): c for c in todo}
                for fut in tqdm(as_completed(futs), total=len(futs), desc="runs", disable=not progress):
                    c = futs[fut]
                    try:
                        results[c.hash()] = fut.result()
                    except Exception as exc:  # noqa: BLE001 - the worker died (e.g. killed for memory)
                        results[c.hash()] = r = LaunchResult(c.name, "failed", f"{type(exc).__name__}: {exc}",
                                                             str(store.path(c) / "train.log"))
                        if not store.status(c).locked:  # record it, so the run is retried, not left pending
                            store.set_status(c, "failed", r.reason, log=r.log)
            except BaseException:  # interrupted (SIGTERM/Ctrl-C): start no new run, stop the running ones
                _stop_workers(pool)
                raise
            pool.shutdown(wait=True)
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


def _worker_signals() -> None:
    """Initializer of local worker processes: SIGTERM kills the worker at once (default action,
    not the runner's handler inherited through fork, which would let the pool's worker loop go on
    to the next queued run) and Ctrl-C is left to the parent, which stops the workers."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
    results: dict[str, LaunchResult] = {}
    pending = dict(zip([c.hash() for c in todo], zip(todo, jobs)))
    with tqdm(total=len(jobs), desc=f"Slurm array {jobs[0].job_id.split('_')[0]}", disable=not progress) as bar:
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
