"""A denoiser in front of a frozen classifier: the base classifier of denoised smoothing
(Salman et al. 2020), ``f(D(x + delta))``, which every certification algorithm smooths unchanged."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class DenoisedClassifier(nn.Module):
    """``classifier(denoiser(x))``. The classifier is frozen: its parameters take no gradient and
    it stays in eval mode whatever mode the pair is put in (training the pair trains the
    denoiser alone)."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.classifier = classifier.eval()
        for parameter in self.classifier.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "DenoisedClassifier":
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.denoiser(x))


def check_denoiser_fits(denoiser: nn.Module, input_shape: Sequence[int], device: torch.device | str = "cpu") -> None:
    """Refuse, in one line, a denoiser whose output is not an image of ``input_shape`` (the shape
    the classifier takes): one forward pass of a zero image, in eval mode."""
    was_training = denoiser.training
    try:
        with torch.no_grad():
            output = denoiser.eval()(torch.zeros((1, *input_shape), device=device))
    except RuntimeError as error:
        raise ValueError(f"the denoiser does not take inputs of shape {tuple(input_shape)}: {str(error).splitlines()[0][:160]}") from None
    finally:
        denoiser.train(was_training)
    if tuple(output.shape[1:]) != tuple(input_shape):
        raise ValueError(f"the denoiser's output has shape {tuple(output.shape[1:])}, but the classifier takes inputs of shape "
                         f"{tuple(input_shape)}")
