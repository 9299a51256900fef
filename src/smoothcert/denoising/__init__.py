"""Denoised smoothing (Salman et al. 2020): a denoiser trained in front of a frozen classifier, so
that a classifier trained without noise can be smoothed and certified
(:mod:`smoothcert.models.denoised` composes the pair; :func:`~smoothcert.denoising.loop.train_denoiser`
trains the denoiser)."""
