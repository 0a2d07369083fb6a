"""Command-line options from configuration dataclasses, so help, defaults and the Python API agree.

:func:`add_config_options` adds one ``--option`` per field of a dataclass (its help from the
field's ``metadata={"help": ...}``, its default shown), and :func:`config_from_args` builds the
dataclass back from the parsed options; :func:`quiet_libraries` keeps the training libraries'
progress bars off a command's output below ``-v``. Commands and benchmarks use them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["add_config_options", "config_from_args", "quiet_libraries"]

C = TypeVar("C")


def _plain_type(annotation: Any) -> Any:
    """``int | None`` -> int; ``str`` -> str."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None))
    return annotation


def add_config_options(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = (),
                       title: str | None = None, defaults: Mapping[str, Any] | None = None) -> None:
    """One ``--option`` per field of the dataclass ``cls``, its help from the field's metadata.

    A bool field becomes ``--name/--no-name``; a field whose metadata says ``required`` must be given.
    ``defaults`` replaces fields' own defaults (a benchmark's chosen settings), in the help too.
    """
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"defaults name fields that {cls.__name__} does not have: {unknown}")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = _plain_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = defaults.get(f.name, f.default)
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                               help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        if f.metadata.get("required"):
            group.add_argument(flag, dest=f.name, type=kind, required=True, metavar=f.name.upper(), help=help_text)
            continue
        shown = "none" if default is None else default
        group.add_argument(flag, dest=f.name, type=kind, default=default, metavar=f.name.upper(),
                           help=f"{help_text} (default: {shown})")


def config_from_args(cls: type[C], args: argparse.Namespace) -> C:
    """Build the dataclass ``cls`` from the parsed options (fields absent from ``args`` keep defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)})


def quiet_libraries(verbose: int) -> None:
    """Below -v, hide transformers' and datasets' progress bars and load reports."""
    if verbose:
        return
    try:
        import datasets
        import transformers
    except ImportError:  # the missing extra is reported by the command itself
        return
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    datasets.disable_progress_bars()
