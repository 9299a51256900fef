"""The training methods, one module each: its objective, its attack if any, its authors' settings
by sigma with their sources, its checks and its one-line description (:class:`base.Method`).

To add a method: a module here with a :class:`~smoothcert.training.methods.base.Method` subclass
and ``METHOD = ...``, its name in :data:`REGISTRY` below, its tests, and a row of the methods table in docs/guide/training.md (docs/architecture.md, "How to add")."""

from __future__ import annotations

from smoothcert.training.methods import adre, adre_adv, basic, catrs, clean, consistency, macer, smoothadv, smoothmix
from smoothcert.training.methods.base import Method, StepInputs

REGISTRY: dict[str, Method] = {module.METHOD.name: module.METHOD
                               for module in (basic, adre, smoothadv, adre_adv, macer, consistency, smoothmix, catrs, clean)}
"""Every training method by its ``--method`` name."""


def method_named(name: str) -> Method:
    """The method called ``name`` (one of :data:`REGISTRY`)."""
    if name not in REGISTRY:
        raise ValueError(f"method must be one of {', '.join(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "Method", "StepInputs", "method_named"]
