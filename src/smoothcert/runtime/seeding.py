"""Seeds derived from tuples of integers, so that every random draw of a run is a function of
(seed, what it is for, where): a resumed, sharded or distributed run draws what one
uninterrupted run draws."""

from __future__ import annotations

import numpy as np
import torch

from smoothcert.validators import NON_NEGATIVE_INT

INIT, DATA_ORDER, TRAIN_NOISE, EVAL_NOISE, CERTIFY_NOISE, AUGMENT = range(6)
"""What a draw is for: the second key of every derived seed."""


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative integers, mixed by numpy's SeedSequence."""
    for key in keys:
        NON_NEGATIVE_INT.check("a seed", key)
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generator_for(device: torch.device | str, *keys: int) -> torch.Generator:
    """A torch generator on ``device`` seeded by :func:`derive_seed` of ``keys``."""
    return torch.Generator(device=device).manual_seed(derive_seed(*keys))


def noise_fingerprint(device: torch.device | str) -> str | None:
    """What, beyond the seed, sets the noise a CUDA generator draws: the GPU model and its thread
    grid (the Philox generator maps numbers to elements through a grid capped at SMs x threads per
    SM, so above that size the same seed gives other noise on another model or MIG slice). None
    on the CPU, whose noise depends on the seed alone."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    properties = torch.cuda.get_device_properties(device)
    return f"{properties.name}, {properties.multi_processor_count} SMs x {properties.max_threads_per_multi_processor} threads"


def noise_source(device: torch.device | str) -> str:
    """Where a run's noise comes from, as a checkpoint records it: the device type, and on CUDA
    the GPU's :func:`noise_fingerprint`."""
    fingerprint = noise_fingerprint(device)
    return torch.device(device).type if fingerprint is None else f"cuda ({fingerprint})"
