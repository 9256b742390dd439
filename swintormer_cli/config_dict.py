"""Dataclasses from plain data (YAML, JSON, model files): the one way the package reads a configuration.

``from_data`` refuses keys the dataclass does not have, naming them, and checks every value against the
field's annotation (nested dataclasses, ``int | None``, ``tuple[float, float]``, ``list[str]``, ``dict[str, X]``);
a list becomes a tuple where the field is a tuple, an integer a float where the field is a float.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_KIND = {int: "whole number", str: "string", bool: "true or false", dict: "mapping", list: "list", tuple: "list"}


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _convert(value, tp, where: str):
    """``value`` checked against the annotation ``tp`` (and converted where harmless), else ``ValueError``."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ValueError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else ValueError(f"{where}: {_describe(value)} is not a {tp}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"{where}: should be one of {list(args)}, got {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_data(tp, value, where)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{where}: should be a number, got {_describe(value)}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ValueError(f"{where}: should be a path, got {_describe(value)}")
    if tp in (int, str, bool, dict, list, tuple):
        if tp is tuple and isinstance(value, list):
            return tuple(value)
        if not isinstance(value, tp) or (isinstance(value, bool) and tp is int):
            raise ValueError(f"{where}: should be a {_KIND[tp]}, got {_describe(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: should be a list, got {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(value) != len(args):
            raise ValueError(f"{where}: should have {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=False)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: should be a list, got {_describe(value)}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: should be a mapping, got {_describe(value)}")
        if not args:
            return value
        return {_convert(k, args[0], where): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ValueError(f"{where}: should be a {tp.__name__}, got {_describe(value)}")
    return value


def from_data(cls: type[T], data, where: str | None = None, *, skip: tuple[str, ...] = (), **given) -> T:
    """A ``cls`` from a mapping of its fields; ``where`` names it in errors. ``given``: fields the caller
    sets itself (not read from ``data``); ``skip``: fields never read from data (kept at their default)."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init} - set(given) - set(skip)
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {sorted(map(str, unknown))}")
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs, **given)


class DictConfig:
    """A dataclass config that goes to and from plain dicts (model files, YAML)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        return from_data(cls, data)
