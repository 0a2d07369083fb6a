"""Command-line options from configuration dataclasses, so help, defaults and the Python API agree.

:func:`add_config_options` adds one ``--option`` per field of a dataclass (its help from the
field's ``metadata={"help": ...}``, its default shown), and :func:`config_from_args` builds the
dataclass back from the parsed options; :func:`quiet_libraries` keeps the training libraries'
progress bars off a command's output below ``-v``. Commands and benchmarks use them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["add_config_options", "config_from_args", "flags_named", "quiet_libraries"]

FLAGS_DEST = "_option_flags"
"""Where the parsed arguments keep each setting's option (field name -> flag), for error messages."""

C = TypeVar("C")


def _plain_type(annotation: Any) -> Any:
    """``int | None`` -> int; ``str`` -> str."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None))
    return annotation


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass an annotation names (``LMSpec | None`` -> LMSpec), else None."""
    kind = _plain_type(annotation)
    return kind if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_options(parser: argparse.ArgumentParser | Any, cls: type, *, skip: tuple[str, ...] = (),
                       title: str | None = None, defaults: Mapping[str, Any] | None = None,
                       required: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                       shown: Mapping[str, str] | None = None) -> None:
    """One option per field of the dataclass ``cls``, its help and shape from the field's metadata.

    A bool field becomes ``--name/--no-name``; a ``list[str]`` field takes the flag again for each
    value (a positional one takes several values). Metadata: ``help``; ``choices``; ``required``;
    ``positional`` (an argument, not an option); ``flag`` (another option name than ``--name``);
    ``metavar``; ``group`` (the title of the option's group; a field that is itself a dataclass
    adds its own fields under it); ``exclusive`` (the name of a set of options of which one at
    most may be given). A field named in ``required`` must be given. ``defaults`` replaces fields'
    own defaults (a command's or a benchmark's chosen settings), in the help too, and ``shown``
    says in words what a default is; ``skip`` leaves fields out (they keep their defaults), nested
    fields included, and ``only`` keeps just the fields it names.
    """
    base = parser.add_argument_group(title) if title else parser
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    defaults = dict(defaults or {})
    names = set(_field_names(cls))
    unknown = sorted(set(defaults) - names)
    if unknown:
        raise ValueError(f"defaults name fields that {cls.__name__} does not have: {unknown}")
    shown = dict(shown or {})
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        if meta.get("cli") is False:
            continue
        nested = _dataclass_type(hints[f.name])
        if nested is not None:
            inner = set(_field_names(nested))
            if only is None or inner & set(only):
                add_config_options(parser, nested, skip=skip, title=meta.get("group", title),
                                   defaults={k: v for k, v in defaults.items() if k in inner},
                                   required=tuple(r for r in required if r in inner), only=only, shown=shown)
            continue
        if only is not None and f.name not in only:
            continue
        group = base
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_argument_group(meta["group"])
            group = groups[meta["group"]]
        if meta.get("exclusive"):
            if meta["exclusive"] not in exclusive:
                exclusive[meta["exclusive"]] = group.add_mutually_exclusive_group()
            group = exclusive[meta["exclusive"]]
        kind = _plain_type(hints[f.name])
        listed = typing.get_origin(kind) is list
        help_text = meta.get("help", "")
        default = defaults.get(f.name, _default(f))
        if meta.get("positional"):
            group.add_argument(f.name, metavar=meta.get("metavar", f.name.upper()), help=help_text,
                               nargs="+" if listed else None)
            continue
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        _remember_flag(parser, f.name, flag if kind is not bool else "--[no-]" + flag.removeprefix("--"))
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                               help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        choices = meta.get("choices")
        options: dict[str, Any] = {"dest": f.name, "choices": choices, "metavar": meta.get(
            "metavar", None if choices else flag.lstrip("-").replace("-", "_").upper())}
        if listed:
            options.update(action="append", type=typing.get_args(kind)[0])
        else:
            options["type"] = kind
        if meta.get("required") or f.name in required:
            group.add_argument(flag, required=True, help=help_text, **options)
            continue
        text = shown.get(f.name, "none" if default in (None, "") else default)
        if listed or ("default:" in help_text and f.name not in shown):
            pass  # a list starts empty; a help that explains its default keeps its words
        else:
            help_text = f"{help_text} (default: {text})"
        group.add_argument(flag, default=default, help=help_text, **options)


def _remember_flag(parser: Any, name: str, flag: str) -> None:
    flags = dict(parser.get_default(FLAGS_DEST) or {})
    flags[name] = flag
    parser.set_defaults(**{FLAGS_DEST: flags})


def flags_named(message: str, args: argparse.Namespace) -> str:
    """``message`` with the command-line options of the settings it names, when it names any.

    Configuration errors name settings as the Python API spells them (``freeze_layers=3``); on the
    command line the same setting is ``--freeze-layers``. A setting counts as named when it is
    spelt with an underscore, or followed by ``=``, or opens the message. A message that already
    names options (``--judge-model``) is left as it is.
    """
    flags: dict[str, str] = getattr(args, FLAGS_DEST, None) or {}
    if re.search(r"(?<![\w-])--[a-z]", message):
        return message

    def named(word: str) -> bool:
        return ("_" in word or message.startswith(word + " ")
                or re.search(rf"(?<![\w.]){re.escape(word)}\s*=", message) is not None)

    found = [flags[w] for w in dict.fromkeys(re.findall(r"\b[a-z][a-z0-9_]*\b", message)) if w in flags and named(w)]
    return f"{message} (options: {', '.join(found)})" if found else message


def _field_names(cls: type) -> list[str]:
    """The names of a dataclass's fields, a nested dataclass's fields in place of its own."""
    hints = typing.get_type_hints(cls)
    names: list[str] = []
    for f in dataclasses.fields(cls):
        nested = _dataclass_type(hints[f.name])
        names += _field_names(nested) if nested is not None else [f.name]
    return names


def config_from_args(cls: type[C], args: argparse.Namespace) -> C:
    """Build the dataclass ``cls`` from the parsed options (fields absent from ``args`` keep defaults;
    a nested dataclass is built from its own fields, or left at its default when none was parsed)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        nested = _dataclass_type(hints[f.name])
        if nested is not None:
            if any(hasattr(args, name) for name in _field_names(nested)):
                values[f.name] = config_from_args(nested, args)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return cls(**values)


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
