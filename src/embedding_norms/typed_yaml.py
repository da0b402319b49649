"""Typed YAML: reading YAML files once, merging layers, and building frozen dataclasses from
nested mappings with every key and type checked (the machinery behind :mod:`embedding_norms.config`
and the artifacts' parameter dataclasses)."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the key and the fix."""


def parse_dotted(items: list[str]) -> dict[str, Any]:
    """Parse ``["optim.lr=0.1", "train.epochs=4"]`` into a nested dict (values as YAML scalars).

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=0.1)")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return _nest(out)


def _check_keys(cls, data: Mapping[str, Any], source: str, prefix: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {data!r}")
    fields_ = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in fields_:
            raise ConfigError(f"{source}: unknown config key {prefix + key!r}; valid keys here: {', '.join(sorted(fields_))}")
        if dataclasses.is_dataclass(hints[key]):
            _check_keys(hints[key], value, source, prefix=f"{prefix}{key}.")


def _build(cls, data: Mapping[str, Any], source: str, prefix: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        key = f"{prefix}{sorted(unknown)[0]}"
        raise ConfigError(f"{source}: unknown config key {key!r}; valid keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(data[name], Mapping):
                raise ConfigError(f"{source}: {prefix}{name} must be a section (mapping), got {data[name]!r}")
            kwargs[name] = _build(tp, data[name], source, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(data[name], tp, f"{prefix}{name}", source)
    return cls(**kwargs)


#: Scientific notation without a dot (``1e-6``), which YAML 1.1 resolves to a string.
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} = {value!r} is not allowed; choose one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r} ({type(value).__name__})")
        return value
    if tp is float:
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):
            value = float(value)  # PyYAML (YAML 1.1) reads "1e-6" as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r} ({type(value).__name__})")
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")  # programming error


#: Parsed YAML files keyed by (path, modification time, size): a planning pass reads each file once.
_YAML_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


def _read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (a fresh copy; parsed once per file version)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist"
                          + ("" if path.parent.is_dir() else " (set EMBEDDING_NORMS_CONFIG_DIR to the repository's configs/ folder)"))
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _YAML_CACHE:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        _YAML_CACHE[key] = data
    return copy.deepcopy(_YAML_CACHE[key])


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn dotted keys into nested dicts; nested dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if isinstance(value, dict):
            value = _nest(value)
        parts = key.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        if isinstance(value, dict) and isinstance(cur.get(parts[-1]), dict):
            cur[parts[-1]] = _deep_merge(cur[parts[-1]], value, source="overrides")
        else:
            cur[parts[-1]] = value
    return out


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(over, Mapping):
        raise ConfigError(f"{source}: expected a mapping, got {over!r}")
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v, source)
        else:
            out[k] = v
    return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
