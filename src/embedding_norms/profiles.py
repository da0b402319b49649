"""Where the configs live, and the profile files: ``configs/profiles/<profile>.yaml`` (scale,
seeds, per-method sections, artifact parameters) and the validated parameters of one artifact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .typed_yaml import ConfigError, _build, _read_yaml

#: The SSL methods of the paper.
METHODS = ("simclr", "simsiam", "byol")
PROFILES = ("paper", "quick", "smoke")


def _find_config_dir() -> Path:
    """The ``configs/`` folder: ``$EMBEDDING_NORMS_CONFIG_DIR`` if set, else the repository's
    (next to ``src/`` in a checkout or an editable install), else ``./configs`` of the working
    directory (a non-editable install run from the repository root)."""
    env = os.environ.get("EMBEDDING_NORMS_CONFIG_DIR")
    if env:
        return Path(env).expanduser().resolve()
    for cand in (Path(__file__).resolve().parents[2] / "configs", Path.cwd() / "configs"):
        if (cand / "profiles").is_dir():
            return cand
    return Path.cwd() / "configs"  # load_profile names it in its error


CONFIG_DIR = _find_config_dir()
#: The repository root (the folder holding ``configs/``): where the ``quick`` outputs are written.
PROJECT_ROOT = CONFIG_DIR.parent
PROFILE_DIR = CONFIG_DIR / "profiles"


PROFILE_KEYS = {"description", "run", "methods", "artifacts", "missing_data", "seeds", "_path"}


def load_profile(profile: str, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """Read ``configs/profiles/<profile>.yaml`` (keys: description, run, methods, artifacts).

    Raises:
        ConfigError: unknown profile name or key, or a method section for an unknown method.
    """
    path = Path(config_dir) / "profiles" / f"{profile}.yaml"
    if profile not in PROFILES and not path.exists():
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    data = _read_yaml(path)
    data["_path"] = path
    unknown = set(data) - PROFILE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; valid: description, run, methods, artifacts, missing_data, seeds")
    seeds = data.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{path}: seeds must be a positive integer (training seeds of every comparison), got {seeds!r}")
    if data.get("missing_data", "skip") not in ("skip", "standin"):
        raise ConfigError(f"{path}: missing_data must be skip or standin, got {data.get('missing_data')!r}")
    for m in (data.get("methods") or {}):
        if m not in METHODS:
            raise ConfigError(f"{path}: methods.{m}: unknown method; choose one of {', '.join(METHODS)}")
    return data


def artifact_params(profile: str, artifact: str, cls: type, config_dir: Path = CONFIG_DIR) -> Any:
    """Parameters of one artifact for a profile: ``artifacts.<artifact>`` of the profile YAML,
    built into the artifact's frozen dataclass ``cls`` (defaults for keys not given).

    Keys and types are checked like run configs (lists become tuples); the dataclass's own
    ``__post_init__`` checks values and raises ValueError, which is re-raised as ConfigError
    naming the profile file and the artifact's section.

    Raises:
        ConfigError: unknown key, wrong type, or an invalid value (the message names the key).
    """
    prof = load_profile(profile, config_dir)
    given = (prof.get("artifacts") or {}).get(artifact) or {}
    source = str(prof["_path"])
    if not isinstance(given, Mapping):
        raise ConfigError(f"{source}: artifacts.{artifact} must be a mapping of parameters, got {given!r}")
    try:
        return _build(cls, given, source, prefix=f"artifacts.{artifact}.")
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: artifacts.{artifact}: {exc} (fix the profile's artifacts.{artifact} section)") from None


# --------------------------------------------------------------------------- parsing
