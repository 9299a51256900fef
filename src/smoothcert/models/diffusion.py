"""One-shot diffusion denoising (Carlini et al., ICLR 2023, "(Certified!!) Adversarial Robustness
for Free!", Algorithm 1): a DDPM's noise prediction at the one timestep whose noise level is the
smoothing noise's, as the denoiser of denoised smoothing.

For images ``x`` in [0, 1] the DDPM sees ``x' = 2x - 1`` in [-1, 1], where the smoothing noise
``sigma`` becomes ``2 sigma``. The forward process at step ``t`` gives
``x_t = sqrt(abar_t) (x' + sqrt((1 - abar_t) / abar_t) eps)``; so with ``t*`` the step where
``sqrt((1 - abar_t) / abar_t) = 2 sigma`` (the nearest of the schedule's steps),
``x_t* = sqrt(abar_t*) (2 (x + sigma delta) - 1)`` is a sample of step ``t*``, and one
prediction ``eps_hat = UNet(x_t*, t*)`` gives the estimate
``x0_hat = (x_t* - sqrt(1 - abar_t*) eps_hat) / sqrt(abar_t*)``, clipped to [-1, 1] and mapped back
to [0, 1]. The UNet and its scheduler come from a local folder in the layout of ``diffusers``'
``save_pretrained`` (``unet/`` and ``scheduler/``); nothing downloads. ``diffusers`` is the
optional extra ``smoothcert[diffusion]``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn


def noise_levels(alphas_cumprod: ArrayLike) -> np.ndarray:
    """``sqrt((1 - abar_t) / abar_t)`` of every step: the noise level of step ``t`` in [-1, 1] units."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.sqrt((1.0 - abar) / abar)


def timestep_for(alphas_cumprod: ArrayLike, sigma: float) -> int:
    """The step whose noise level is nearest ``2 sigma`` (Carlini et al.'s ``t*``); a sigma beyond
    the schedule's last level, or below half its first, is refused in one line."""
    levels = noise_levels(alphas_cumprod)
    if not levels[0] / 2 <= 2 * sigma <= levels[-1]:
        raise ValueError(f"sigma = {sigma:g} (2 sigma = {2 * sigma:g} on images in [-1, 1]) is outside the noise levels the diffusion "
                         f"scheduler reaches, {levels[0] / 2:.3g} to {levels[-1]:.3g}; choose a sigma between {levels[0] / 4:.3g} and "
                         f"{levels[-1] / 2:.3g}")
    return int(np.argmin(np.abs(levels - 2 * sigma)))


class DiffusionDenoiser(nn.Module):
    """The one-shot denoiser of the module docstring for noise ``sigma``, from a DDPM ``unet`` (a
    ``diffusers`` ``UNet2DModel`` predicting the noise) and its schedule's ``alphas_cumprod``."""

    def __init__(self, unet: nn.Module, alphas_cumprod: ArrayLike, sigma: float) -> None:
        super().__init__()
        self.unet = unet.eval()
        for parameter in self.unet.parameters():
            parameter.requires_grad_(False)
        self.timestep = timestep_for(alphas_cumprod, sigma)
        self.abar = float(np.asarray(alphas_cumprod, dtype=np.float64)[self.timestep])

    def train(self, mode: bool = True) -> "DiffusionDenoiser":
        super().train(mode)
        self.unet.eval()
        return self

    def forward(self, noisy: Tensor) -> Tensor:
        scaled = self.abar ** 0.5 * (2 * noisy - 1)
        steps = torch.full((noisy.shape[0],), self.timestep, device=noisy.device, dtype=torch.long)
        predicted = self.unet(scaled, steps).sample[:, :noisy.shape[1]]  # a UNet that also learns its variance: the noise half
        estimate = (scaled - (1 - self.abar) ** 0.5 * predicted) / self.abar ** 0.5
        return (estimate.clamp(-1, 1) + 1) / 2


def load_diffusion_denoiser(folder: str | Path, sigma: float, device: str | torch.device = "cpu") -> tuple[DiffusionDenoiser, dict[str, Any]]:
    """The one-shot denoiser of the DDPM saved in ``folder`` (``unet/`` and ``scheduler/``, as
    ``diffusers`` writes them) for noise ``sigma``, and what a results file records of it: the
    folder, the timestep and the SHA-256 of the UNet's weights."""
    folder = Path(folder)
    if not (folder / "unet" / "config.json").is_file() or not (folder / "scheduler" / "scheduler_config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no diffusion model: expected unet/config.json and scheduler/scheduler_config.json, "
                                "as diffusers' save_pretrained writes them")
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        raise ImportError("diffusion denoising needs the optional extra: pip install 'smoothcert[diffusion]'") from None
    unet = UNet2DModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    if scheduler.config.prediction_type != "epsilon":
        raise ValueError(f"{folder}'s scheduler predicts {scheduler.config.prediction_type!r}; one-shot denoising needs a UNet that "
                         "predicts the noise ('epsilon')")
    denoiser = DiffusionDenoiser(unet, scheduler.alphas_cumprod.numpy(), sigma).to(device)
    digest = hashlib.sha256()
    for weights in sorted((folder / "unet").glob("diffusion_pytorch_model*")):
        digest.update(weights.read_bytes())
    return denoiser, {"diffusion": str(folder), "diffusion_timestep": denoiser.timestep, "diffusion_unet_sha256": digest.hexdigest()}
