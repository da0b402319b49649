"""Command line of one training run: ``python -m embedding_norms.train_cli --method M --profile P``
(bad input, and a library of another checkout than the working directory's, are refused before a
run folder exists; a locked run, Ctrl-C/SIGTERM and a full disk
end with a message, never a traceback)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

from .config import ConfigError, RunConfig, parse_dotted
from .profiles import METHODS, PROFILES
from .data import DataError, check_data_dir
from .runs import RunStore
from .train import resolve_device, train


def main(argv: Optional[list[str]] = None) -> int:
    """Command line: train one run (see module docstring)."""
    p = argparse.ArgumentParser(description="Train one SSL run into the run store.")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=0.1")
    p.add_argument("--runs", default=None, help="run store folder (default ./runs)")
    p.add_argument("--data-dir", default=None, help="offline data folder (default $EMBEDDING_NORMS_DATA)")
    p.add_argument("--download", action="store_true", help="allow torchvision to download datasets")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    import signal  # local imports: the CLI's own needs

    from .provenance import PACKAGE_DIR, MixedCheckoutError, check_one_checkout
    try:  # the library of another checkout must not train into this one's runs (issue 23)
        check_one_checkout({"library (embedding_norms)": PACKAGE_DIR})
    except MixedCheckoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from .runs import RunLocked

    store = RunStore(args.runs)
    cfg = None
    old_term = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        cfg = RunConfig.load(args.method, args.profile, parse_dotted(args.set))
        resolve_device(args.device)
        _check_before_training(cfg, args.data_dir, args.download or None, store)
        st = train(cfg, store, args.data_dir, args.download or None, args.device, progress=not args.no_progress)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunLocked as exc:
        print(f"error: {exc}; wait for it to finish (or stop it), then run the same command again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        where = f" {store.path(cfg)}" if cfg is not None and store.path(cfg).exists() else ""
        print(f"\ninterrupted: run the same command again to resume{where} from its newest checkpoint",
              file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. a full disk (ENOSPC) or a read-only run store
        reason = f"{type(exc).__name__}: {exc}"
        if cfg is not None:
            _mark_failed_in_place(store, cfg, reason)
        print(f"error: {reason}; free space / make {store.root} writable, then run the same command again "
              f"(the run resumes from its newest checkpoint)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
    print(f"{cfg.name}: {st.state} {st.reason}")
    return 0 if st.state == "done" else 1


def _sigterm_to_interrupt(signum, frame):  # SIGTERM ends the run like Ctrl-C: marked interrupted, resumable
    raise KeyboardInterrupt(f"signal {signum}")


def _check_before_training(cfg: RunConfig, data_dir, download, store: RunStore) -> None:
    """Checks of the single-run command before a run folder is created.

    Raises:
        DataError: the data folder is missing, or a dataset the run needs is missing or corrupt
            (checksum of the offline file), unless the run uses stand-in data.
        ConfigError: sizes that do not fit the training set (see :func:`~embedding_norms.data.check_run_sizes`),
            or a run store that cannot be written.
    """
    from .data import check_run_sizes, dataset_available
    from .io import unwritable_folder

    check_data_dir(data_dir, download)
    if not cfg.data.standin:
        for ds in dict.fromkeys([cfg.data.dataset] + ([cfg.eval.novel] if cfg.eval.novel not in (None, "heldout") else [])):
            ok, why = dataset_available(ds, data_dir, download)
            if not ok:
                raise DataError(f"{ds} is not available: {why}")
    check_run_sizes(cfg)
    bad = unwritable_folder(store.root)
    if bad is not None:
        raise ConfigError(f"the run store {store.root} cannot be written ({bad} is not writable); "
                          f"make it writable or choose another folder with --runs")


def _mark_failed_in_place(store: RunStore, cfg: RunConfig, reason: str) -> None:
    """Record ``failed`` in a run's ``status.json`` when the atomic write failed (a full disk has no
    room for the temporary copy): overwrite the file in place, which reuses its own disk blocks.
    Best effort: if even that fails the run is left ``running`` with a free lock, which the store
    reports as interrupted (it resumes)."""
    import json
    import os
    import socket

    f = store.path(cfg) / "status.json"
    try:
        with open(f, "r+") as fh:
            data = json.load(fh)
            if data.get("state") in ("done", "diverged", "failed"):
                return
            data.update(state="failed", reason=reason, updated=time.time(), host=socket.gethostname(),
                        pid=os.getpid())
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(data, indent=2) + "\n")
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
