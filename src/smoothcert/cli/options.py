"""Command-line options generated from settings dataclasses (:func:`smoothcert.settings.setting`):
a field's flags, type, choices, default and help text are those it declares, never restated."""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import types
import typing
from typing import Any, Sequence

from smoothcert.settings import declared_defaults


def _kind(annotation: Any) -> tuple[type, bool]:
    """The element type of a field's annotation, and whether it takes several values."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) in (collections.abc.Sequence, tuple, list):
        return typing.get_args(annotation)[0], True
    return annotation, False


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _with_defaults(help: str | None, name: str, default: Any, presets: dict[str, dict[str, Any]]) -> str | None:
    """``help`` followed by the default, and each preset's value where it differs from it."""
    if help is None:
        return None
    others = [f"{preset} {_shown(values[name])}" for preset, values in presets.items() if name in values and values[name] != default]
    return f"{help} [default {_shown(default)}{'; ' + ', '.join(others) if others else ''}]".replace("%", "%%")


def add_options(parser: argparse._ActionsContainer, settings: type, names: Sequence[str] | None = None, *,
                defaults: dict[str, Any] | None = None, unset: bool = False, presets: dict[str, dict[str, Any]] | None = None,
                required: Sequence[str] = (), notes: dict[str, str] | None = None) -> None:
    """One option per field of the dataclass ``settings`` (those in ``names``, default every field
    with help text). Defaults are the fields' own, or ``defaults[name]``; with ``unset``, options left
    out are None, so that the caller keeps only what the user gave (e.g. over a preset). With
    ``presets`` (name: the values it changes), the help shows the default and what each preset sets
    instead; ``required`` options must be given; ``notes[name]`` is added to a field's help."""
    hints = typing.get_type_hints(settings)
    chosen = set(names) if names is not None else None
    for item in dataclasses.fields(settings):
        if (chosen is None and item.metadata.get("help") is None) or (chosen is not None and item.name not in chosen):
            continue
        flags = item.metadata.get("flags") or ("--" + item.name.replace("_", "-"),)
        default = (defaults or {}).get(item.name, declared_defaults(settings).get(item.name))
        kind, several = _kind(hints[item.name])
        shown = item.metadata.get("help")
        if shown is not None and item.name in (notes or {}):
            shown = f"{shown}; {notes[item.name]}"
        if presets is not None:
            shown = _with_defaults(shown, item.name, default, presets)
        options: dict[str, Any] = {"dest": item.name, "help": shown}
        if item.name in required or item.name not in declared_defaults(settings):
            options["required"] = True
        if kind is bool:
            options.update(action="store_true", default=None if unset else default)
        else:
            options.update(type=kind, default=None if unset else (list(default) if several else default))
            if several:
                options["nargs"] = "+"
            if item.metadata.get("choices"):
                options["choices"] = list(item.metadata["choices"])
        parser.add_argument(*flags, **options)


def chosen_values(args: argparse.Namespace, settings: type) -> dict[str, Any]:
    """The fields of ``settings`` that ``args`` holds a value for (not None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(settings) if getattr(args, f.name, None) is not None}
