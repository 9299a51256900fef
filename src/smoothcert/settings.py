"""Settings fields that carry their default, rule, help text and command-line flags, and the check
of a settings dataclass against them (torch-free).

A settings dataclass (:class:`~smoothcert.training.config.TrainConfig`,
:class:`~smoothcert.smoothing.certification.CertifySettings`) declares each field with
:func:`setting`; :func:`field_problems` checks every field against its rule, and the command line
(:mod:`smoothcert.cli.options`) builds its options from the same fields, so a setting's default,
help text and check are written once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from smoothcert.rules import Rule, one_of


def setting(default: Any = dataclasses.MISSING, help: str | None = None, rule: Rule | None = None, *,
            flags: Sequence[str] = (), choices: Sequence[str] | None = None, factory: Callable[[], Any] | None = None,
            place: bool = False) -> Any:
    """A dataclass field with its help text, its rule (``choices`` implies :func:`one_of`), the
    command-line flags that set it (default: ``--name-with-dashes``) and whether it says only
    where or how a run is computed (``place``: a folder, a device, worker processes), never what
    it computes, so that records compare without it (:func:`place_fields`)."""
    if choices is not None and rule is None:
        rule = one_of(choices)
    metadata = {"help": help, "rule": rule, "flags": tuple(flags), "choices": choices, "place": place}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_problems(settings: Any) -> list[str]:
    """Each field of the dataclass instance ``settings`` whose value breaks its rule, worded."""
    problems = []
    for item in dataclasses.fields(settings):
        rule = item.metadata.get("rule")
        problem = rule.problem(item.name, getattr(settings, item.name)) if rule is not None else None
        if problem is not None:
            problems.append(problem)
    return problems


def place_fields(settings: type) -> frozenset[str]:
    """The fields of the settings dataclass ``settings`` declared with ``place=True``: where and
    how a run is computed, not what (left out when a finished run's settings are compared, and
    free to change on resume)."""
    return frozenset(item.name for item in dataclasses.fields(settings) if item.metadata.get("place"))


def declared_defaults(settings: type) -> dict[str, Any]:
    """The declared default of every field of ``settings``: what a record written before a
    setting existed is read with. A setting added later is declared with the default that
    reproduces what runs did before it (``tests/test_settings.py`` holds each to it). A field
    without a default (one every record holds) has none here."""
    return {item.name: item.default if item.default is not dataclasses.MISSING else item.default_factory()
            for item in dataclasses.fields(settings)
            if item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING}
