"""One-shot diffusion denoising on a tiny DDPM built in a temporary folder (nothing downloads): the
timestep and the scaling against Carlini et al.'s formulas, the certify command through it, and
bad input refused in one line."""

import numpy as np
import pytest
import torch

from smoothcert.cli import main
from smoothcert.models.diffusion import DiffusionDenoiser, load_diffusion_denoiser, timestep_for
from smoothcert.storage.tsv import read_results

diffusers = pytest.importorskip("diffusers")


def linear_schedule(steps=1000, first=1e-4, last=0.02):
    """DDPM's linear betas (Ho et al.) and their cumulative products, transcribed."""
    return np.cumprod(1 - np.linspace(first, last, steps))


@pytest.fixture(scope="module")
def ddpm(tmp_path_factory):
    """A tiny noise-predicting UNet for 1 x 28 x 28 images and the linear DDPM scheduler, saved as
    diffusers saves them."""
    folder = tmp_path_factory.mktemp("ddpm")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                                 norm_num_groups=4)
    unet.save_pretrained(folder / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")
    return folder


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0])
def test_the_timestep_s_noise_level_is_twice_sigma(sigma):
    abar = linear_schedule()
    levels = np.sqrt((1 - abar) / abar)
    chosen = timestep_for(abar, sigma)
    assert abs(levels[chosen] - 2 * sigma) == np.min(np.abs(levels - 2 * sigma))
    assert abs(levels[chosen] - 2 * sigma) < 0.02 * 2 * sigma  # the linear schedule's steps are that fine there


def test_a_sigma_the_scheduler_cannot_reach_is_refused():
    with pytest.raises(ValueError, match="outside the noise levels the diffusion scheduler reaches"):
        timestep_for(linear_schedule(), 100.0)


def test_the_denoiser_scales_predicts_and_maps_back_as_the_formula_says(ddpm):
    denoiser, record = load_diffusion_denoiser(ddpm, 0.5)
    unet = diffusers.UNet2DModel.from_pretrained(ddpm, subfolder="unet", local_files_only=True).eval()
    abar = linear_schedule()
    t = timestep_for(abar, 0.5)
    assert denoiser.timestep == record["diffusion_timestep"] == t and denoiser.abar == pytest.approx(abar[t], rel=1e-5)
    noisy = torch.rand(2, 1, 28, 28) + 0.5 * torch.randn(2, 1, 28, 28)
    x_t = np.sqrt(abar[t]) * (2 * noisy - 1)
    with torch.no_grad():
        eps = unet(x_t.float(), torch.tensor([t, t])).sample
        expected = (np.clip((x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t]), -1, 1) + 1) / 2
        torch.testing.assert_close(denoiser(noisy), expected.float(), rtol=1e-4, atol=1e-5)
    assert all(not p.requires_grad for p in denoiser.parameters()) and not denoiser.train().unet.training


def test_certify_smooths_a_classifier_behind_the_diffusion_denoiser(ddpm, checkpoint, tmp_path):
    out = tmp_path / "cert.tsv"
    assert main(["certify", "--checkpoint", str(checkpoint), "--diffusion", str(ddpm), "--outfile", str(out), "--n", "100",
                 "--max", "3", "--quiet"]) == 0
    rows = read_results(out)
    assert len(rows) == 3
    import json

    record = json.loads((tmp_path / "cert.tsv.json").read_text())
    assert record["diffusion"] == str(ddpm) and record["diffusion_timestep"] == timestep_for(linear_schedule(), 0.5)
    assert len(record["diffusion_unet_sha256"]) == 64


def test_a_folder_without_a_unet_is_refused_in_one_line(checkpoint, tmp_path, capsys):
    code = main(["certify", "--checkpoint", str(checkpoint), "--diffusion", str(tmp_path), "--outfile", str(tmp_path / "c.tsv"),
                 "--n", "100", "--max", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "holds no diffusion model: expected unet/config.json" in err
    assert not (tmp_path / "c.tsv").exists()


def test_a_diffusion_model_of_another_image_size_is_refused(tmp_path):
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                                 norm_num_groups=4)
    denoiser = DiffusionDenoiser(unet, linear_schedule(), 0.5)
    from smoothcert.models.denoised import check_denoiser_fits

    with pytest.raises(ValueError, match="the denoiser does not take inputs of shape \\(1, 28, 28\\)"):
        check_denoiser_fits(denoiser, (1, 28, 28))
