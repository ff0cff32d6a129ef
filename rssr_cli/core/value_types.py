"""The types of a settings value's fields, checked when it is built: a notebook that passes "no" for a bool or a
string where a list of inputs is expected gets the documented UsageError before any file is opened, not a
TypeError deep in a run, nor a string split into characters (issue 23 item 10). The rule reads the dataclass's
own annotations, so a new field is checked without a new line here."""

from __future__ import annotations

import collections.abc
import dataclasses
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from rssr_cli.core.errors import UsageError


def check_field_types(value: Any) -> None:
    """UsageError naming the first field of the dataclass instance `value` whose value does not fit its annotation."""
    hints = typing.get_type_hints(type(value))
    for field in dataclasses.fields(value):
        given = getattr(value, field.name)
        if not fits(given, hints[field.name]):
            raise UsageError(
                f"{type(value).__name__}.{field.name} must be {describe(hints[field.name])}, not {given!r} ({type(given).__name__})"
            )


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` fits the annotation `hint` (the kinds these settings use; anything else is accepted)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, (bool, _numpy_bool()))
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, _numpy_bool()))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, _numpy_bool()))
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, (str, os.PathLike))
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(item, args[0]) for item in value)
        return len(value) == len(args) and all(fits(item, arg) for item, arg in zip(value, args))
    if origin in (collections.abc.Mapping, dict):
        return isinstance(value, collections.abc.Mapping)
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if hint is type(None):
        return "None"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list or tuple of {describe(args[0])}"
        return f"a tuple of {len(args)} ({', '.join(describe(a) for a in args)})"
    if hint is bool:
        return "True or False"
    if hint is Path:
        return "a path"
    names = {int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if origin in (collections.abc.Mapping, dict):
        return "a mapping (dict)"
    return getattr(hint, "__name__", str(hint))


def _numpy_bool() -> type:
    return np.bool_
