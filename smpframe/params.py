"""A program's parameters as CLI options, read from its ``__init__`` signature.

Each keyword parameter becomes ``--name-with-dashes`` (or the flag in the class's
``cli_flags``); the type comes from the annotation (bool gives ``--x/--no-x``, a
``Literal`` gives choices), the default from the signature and the help text from the
class docstring's numpydoc ``Parameters`` section. Parameters whose type has no
command-line spelling (lists, dicts) stay Python-only.
"""
from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

from smpframe.api import SMPProgram, param_names

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class ProgramOption:
    """One parameter of a program as a CLI option."""

    name: str
    flag: str
    kind: type
    default: Any
    choices: tuple[Any, ...] | None
    help: str


def scalar_kind(hint: Any) -> tuple[type | None, tuple[Any, ...] | None]:
    """(bool/int/float/str, choices) for an annotation; (None, None) if it has no CLI form."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return scalar_kind(args[0]) if len(args) == 1 else (None, None)
    if origin is Literal:
        values = typing.get_args(hint)
        kinds = {type(v) for v in values}
        return (kinds.pop(), tuple(values)) if len(kinds) == 1 else (None, None)
    if hint in _SCALARS:
        return hint, None
    return None, None


def parameter_help(cls: type) -> dict[str, str]:
    """``{name: description}`` from the numpydoc ``Parameters`` sections of ``cls`` and its bases."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's text wins over its base's
        doc = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        match = re.search(r"^Parameters\n-+\n(.*?)(?:\n\n(?=\S[^\n]*\n-+)|\Z)", doc, re.S | re.M)
        if not match:
            continue
        current = None
        words: dict[str, list[str]] = {}
        for line in match.group(1).splitlines():
            entry = re.match(r"^(\w+)\s*:", line)
            if entry:
                current = entry.group(1)
                words[current] = []
            elif current and line.strip():
                words[current].append(line.strip())
        out.update({name: " ".join(text) for name, text in words.items()})
    return out


def program_options(cls: type[SMPProgram]) -> list[ProgramOption]:
    """The CLI options of ``cls``: one per scalar keyword parameter of ``__init__``."""
    hints = typing.get_type_hints(cls.__init__)
    signature = inspect.signature(cls.__init__).parameters
    helps = parameter_help(cls)
    options = []
    for name in param_names(cls):
        kind, choices = scalar_kind(hints.get(name, Any))
        if kind is None:
            continue
        default = signature[name].default
        default = None if default is inspect.Parameter.empty else default
        flag = cls.cli_flags.get(name, "--" + name.replace("_", "-"))
        options.append(ProgramOption(name, flag, kind, default, choices, helps.get(name, "")))
    return options


def add_program_arguments(parser: argparse.ArgumentParser, cls: type[SMPProgram],
                          add: Callable[..., None] | None = None) -> None:
    """Add ``cls``'s parameters to ``parser`` in a group of their own.

    ``add(flag, group, **kwargs)`` adds one option (default: ``group.add_argument``).
    """
    group = parser.add_argument_group(f"{cls.name} parameters")
    add = add or (lambda flag, group, **kwargs: group.add_argument(flag, **kwargs))
    for opt in program_options(cls):
        shown = "" if opt.default is None else f" (default {opt.default})"
        kwargs: dict[str, Any] = {"dest": f"param_{opt.name}", "default": opt.default,
                                  "help": (opt.help + shown).strip()}
        if opt.kind is bool:
            add(opt.flag, group, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            add(opt.flag, group, type=opt.kind, choices=opt.choices,
                metavar=opt.name.upper() if opt.choices is None else None, **kwargs)


def program_from_args(cls: type[SMPProgram], args: argparse.Namespace) -> SMPProgram:
    """An instance of ``cls`` with the parameters given on the command line."""
    values = {opt.name: getattr(args, f"param_{opt.name}") for opt in program_options(cls)}
    return cls(**values)
