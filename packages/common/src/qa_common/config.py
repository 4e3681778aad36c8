"""Typed configuration: dataclasses built from mappings and command-line strings, unknown keys rejected.

Every package describes its variants as named presets of one dataclass (litgpt's ``name_to_config``);
this module turns presets, MLproject parameters and ``--key value`` flags into those dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key is unknown or its value has the wrong type."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` (often a string from the command line or MLproject) to ``annotation``; raises
    ConfigError naming ``key``. ``""`` is None for an optional type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        errors = []
        for member in members:
            try:
                return coerce(value, member, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (tuple, list):
        (item_type, *_) = typing.get_args(annotation) or (str,)
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [item.strip() if isinstance(item, str) else item for item in items if item != ""]
        return origin(coerce(item, item_type, key) for item in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                try:
                    number = float(value)  # MLproject float parameters arrive as "3.0"
                except ValueError:
                    number = None
                if number is not None and number.is_integer():
                    return int(number)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def build_config(cls: type[T], *layers: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from mappings applied in order (defaults, preset, overrides).

    Raises ConfigError naming every unknown key and any value that does not fit its field's type.
    """
    types_by_name = _field_types(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        unknown = sorted(set(layer) - set(types_by_name))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} key(s): {', '.join(unknown)}; known: {', '.join(sorted(types_by_name))}"
            )
        for key, value in layer.items():
            values[key] = coerce(value, types_by_name[key], key)
    return cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A flat dict of a dataclass config, tuples as comma-joined strings (MLflow params, JSON files)."""
    flat = {}
    for key, value in dataclasses.asdict(config).items():
        flat[key] = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
    return flat


def split_overrides(cls: type, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``overrides`` into the keys that belong to ``cls`` and the rest."""
    names = set(_field_types(cls))
    mine = {key: value for key, value in overrides.items() if key in names}
    rest = {key: value for key, value in overrides.items() if key not in names}
    return mine, rest
