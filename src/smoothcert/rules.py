"""Every rule a setting is checked against, each with its one wording (torch-free).

A rule is a check and the words that say what was expected: ``sigma must be a positive finite
number, got -1``. Settings dataclasses attach a rule to each field
(:func:`smoothcert.settings.setting`); functions that take a scalar from a user check it with
``RULE.check(name, value)`` where it enters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Rule:
    """A check and its wording: a value that fails reads ``<name> <wording>, got <value>``."""

    holds: Callable[[Any], bool]
    wording: str

    def problem(self, name: str, value: Any) -> str | None:
        """The message for ``value`` of setting ``name``, or None when it holds."""
        return None if self.holds(value) else f"{name} {self.wording}, got {value!r}"

    def refuse(self, name: str, value: Any) -> None:
        """Raise the rule's message for ``value`` (for checks made elsewhere, e.g. over an array)."""
        raise ValueError(f"{name} {self.wording}, got {value!r}")

    def check(self, name: str, value: Any) -> Any:
        """``value``, or a ValueError with the rule's message."""
        problem = self.problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        return value


def _integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


POSITIVE_INT = Rule(lambda v: _integer(v) and v >= 1, "must be a positive integer")
AT_LEAST_TWO = Rule(lambda v: _integer(v) and v >= 2, "must be an integer of at least 2")
NON_NEGATIVE_INT = Rule(lambda v: _integer(v) and v >= 0, "must be a non-negative integer")
POSITIVE = Rule(lambda v: _real(v) and v > 0, "must be a positive finite number")
NON_NEGATIVE = Rule(lambda v: _real(v) and v >= 0, "must be a non-negative finite number")
AT_LEAST_ONE = Rule(lambda v: _real(v) and v >= 1, "must be a finite number of at least 1")
PROBABILITY = Rule(lambda v: _real(v) and 0 < v < 1, "must lie strictly between 0 and 1")
SHARE = Rule(lambda v: _real(v) and 0 <= v < 1, "must lie in [0, 1)")
ZERO_OR_ONE = Rule(lambda v: _integer(v) and v in (0, 1), "must be 0 or 1")


def one_of(choices: Sequence[str]) -> Rule:
    """The value must be one of ``choices``."""
    return Rule(lambda v: v in choices, "must be one of " + ", ".join(choices))


def optional(rule: Rule) -> Rule:
    """None (off), or a value that satisfies ``rule``."""
    return Rule(lambda v: v is None or rule.holds(v), f"{rule.wording} (or be left out)")
