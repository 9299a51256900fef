"""What every training method answers to (:class:`Method`), and the inputs of one step
(:class:`StepInputs`). The loop asks the method of ``config.method`` for its draws, its step and
its checks; it never branches on a method's name."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from smoothcert.training.objectives import LossParts

if TYPE_CHECKING:
    from smoothcert.training.config import TrainConfig


@dataclass(frozen=True)
class StepInputs:
    """One chunk of a batch: inputs ``(B, ...)``, labels ``(B,)``, noise ``(B, k, ...)``, and the
    per-example draws some methods use: ``draw`` (the copy of the single-draw ``l_per``),
    ``extra`` (the method's own, :meth:`Method.draws`) and ``target`` (CAT-RS's smoothed
    predictions ``(B, C)``)."""

    x: torch.Tensor
    labels: torch.Tensor
    noise: torch.Tensor
    draw: torch.Tensor | None = None
    extra: torch.Tensor | None = None
    target: torch.Tensor | None = None

    def logits(self, model: torch.nn.Module, inputs: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The ``(B, k, C)`` logits of ``inputs + noise_j`` (default: ``x`` and the step's noise), in one pass."""
        inputs = self.x if inputs is None else inputs
        noise = self.noise if noise is None else noise
        batch, copies = noise.shape[:2]
        return model((inputs.unsqueeze(1) + noise).flatten(0, 1)).view(batch, copies, -1)


class Method:
    """A training method: its name (``--method``), its one-line description, its authors' settings
    by sigma, the checks of the settings it needs, its own random draws and its training step."""

    name: str = ""
    description: str = ""
    chunked_by_copies: bool = False
    """Whether its authors' script takes one SGD step per chunk of ``B / k`` examples (``chunks = k``)."""
    regularized: bool = False
    """Whether its loss carries the ADRE term (divergence diagnostics and hints)."""
    soft_targets: bool = False
    """Whether it trains against smoothed predictions of the training set (``catrs_votes``)."""

    def defaults(self, sigma: float) -> dict[str, Any]:
        """The settings its authors use at ``sigma`` (none by default)."""
        return {}

    def problems(self, config: TrainConfig) -> list[str]:
        """What in ``config`` this method cannot train with, each worded (none by default)."""
        return []

    def draws(self, config: TrainConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor | None:
        """Its own random draws for a global batch, from the step's generator after the noise
        (a tensor whose first dimension is the batch), or None."""
        return None

    def step(self, model: torch.nn.Module, attacked: torch.nn.Module, batch: StepInputs, config: TrainConfig,
             epoch: int) -> LossParts:
        """The loss of one chunk in epoch ``epoch`` (backward not taken). ``attacked`` is the module
        an attack differentiates (the unwrapped model under DistributedDataParallel)."""
        raise NotImplementedError


def by_sigma(sigma: float, values: tuple[float, float, float]) -> float:
    """The value the authors use at sigma 0.25, 0.5 or 1.0, taking the nearest of those (in log sigma)."""
    return values[min(range(3), key=lambda i: abs(math.log(sigma / (0.25, 0.5, 1.0)[i])))]
