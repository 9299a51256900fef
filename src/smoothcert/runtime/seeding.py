"""Seeds derived from tuples of integers, so that every random draw of a run is a function of
(seed, what it is for, where): a resumed, sharded or distributed run draws what one
uninterrupted run draws."""

from __future__ import annotations

import numpy as np
import torch

from smoothcert.rules import NON_NEGATIVE_INT

INIT, DATA_ORDER, TRAIN_NOISE, EVAL_NOISE, CERTIFY_NOISE, AUGMENT = range(6)
"""What a draw is for: the second key of every derived seed."""


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative integers, mixed by numpy's SeedSequence."""
    for key in keys:
        NON_NEGATIVE_INT.check("a seed", key)
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


CERTIFY_STREAMS = 2
"""The version of the per-input certification noise streams every results file records
(``noise_streams``): 2 gives each input of a run its own stream (:func:`input_seed`); version 1
(records without the key) seeded input ``idx`` by ``derive_seed(seed, CERTIFY_NOISE, idx)``, of
which torch's CPU generator keeps only the low 32 bits, so that two of 10,000 inputs shared a
stream with probability about 1%. A file is resumed only with the streams it was started with."""

_STREAM_STEP = 0x9E3779B1
"""An odd step: ``idx -> base + idx * step (mod 2^32)`` is one-to-one on 32-bit seeds."""


def input_seed(seed: int, idx: int) -> int:
    """The 32-bit seed of input ``idx``'s certification noise in a run seeded ``seed``: a base
    mixed from ``seed`` plus ``idx`` times an odd step, modulo ``2^32``, so that the inputs of a
    run (any ``idx < 2^32``) never share a stream, on the CPU, whose generator takes 32 bits, as on
    CUDA."""
    NON_NEGATIVE_INT.check("idx", idx)
    base = derive_seed(seed, CERTIFY_NOISE) & 0xFFFFFFFF
    return (base + idx * _STREAM_STEP) % 2**32


def input_generator(device: torch.device | str, seed: int, idx: int) -> torch.Generator:
    """A generator on ``device`` for input ``idx``'s certification noise (:func:`input_seed`)."""
    return torch.Generator(device=device).manual_seed(input_seed(seed, idx))


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
