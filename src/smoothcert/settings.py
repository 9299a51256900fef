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
            flags: Sequence[str] = (), choices: Sequence[str] | None = None, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its help text, its rule (``choices`` implies :func:`one_of`) and the
    command-line flags that set it (default: ``--name-with-dashes``)."""
    if choices is not None and rule is None:
        rule = one_of(choices)
    metadata = {"help": help, "rule": rule, "flags": tuple(flags), "choices": choices}
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
