"""Typed, frozen configuration sections loaded from ``params.yaml``.

Each stage reads only its own section into a frozen dataclass; an unknown key
is an error that names the key, so a typo in ``params.yaml`` never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file; raise ``ValueError`` naming the file if it is not a mapping."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a dataclass field annotation (int→float allowed)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"{where}: {value!r} does not match {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ValueError(f"{where}: expected null, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float, str) and (
        not isinstance(value, annotation) or isinstance(value, bool)
    ):
        raise ValueError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_section(cls: type[T], section: dict[str, Any] | None, name: str,
                 source: str | Path = "params.yaml") -> T:
    """Build the frozen dataclass ``cls`` from one params section.

    Args:
        cls: a dataclass whose fields are the allowed keys.
        section: the mapping read from the params file; ``None`` (the file has no such
            section) is an error, never a silent fall-back to the defaults.
        name: the section's name; source: the file it came from (both for error messages).

    Raises:
        ValueError: naming ``source``, on a missing section, an unknown or missing key,
            a wrongly typed value or one the dataclass rejects. Every field is required:
            the only defaults are the values in ``params.yaml``.
    """
    if section is None:
        raise ValueError(f"{source}: missing section '{name}'")
    if not isinstance(section, dict):
        raise ValueError(f"{source}: section '{name}' must be a mapping, got {section!r}")
    section = dict(section)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(unknown)} in section '{name}'; "
            f"known keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        key: _coerce(value, hints[key], f"{source}: {name}.{key}")
        for key, value in section.items()
    }
    missing = [key for key in fields if key not in section]
    if missing:
        raise ValueError(f"{source}: missing key(s) {', '.join(f'{name}.{k}' for k in missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # the dataclass's own checks (__post_init__)
        raise ValueError(f"{source}: section '{name}': {err}") from None


def load_section(cls: type[T], name: str, path: str | Path = "params.yaml",
                 keys: tuple[str, ...] | None = None) -> T:
    """Load section ``name`` of the params file into ``cls`` (see :func:`from_section`).

    Args:
        keys: read only these keys of the section (the ones a stage declares in dvc.yaml,
            e.g. ``data.on_error``); None reads the whole section.
    """
    section = load_params(path).get(name)
    if keys is not None and isinstance(section, dict):
        section = {key: section[key] for key in keys if key in section}
    return from_section(cls, section, name, path)


def load_models(path: str | Path = "params.yaml") -> list[str]:
    """The enabled model names: the params file's top-level ``models`` list.

    Raises:
        ValueError: naming the file when ``models`` is missing, empty or not a list of names.
    """
    models = load_params(path).get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ValueError(f"{path}: `models` must be a non-empty list of model names, got {models!r}")
    return models


def to_dict(config: Any) -> dict[str, Any]:
    """A resolved config as plain data, for writing next to the artifacts it produced."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }
