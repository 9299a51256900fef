"""Train a base classifier (or resume its training) and certify its test split: the step the
demo, the study and the paper's cells share."""

from __future__ import annotations

from pathlib import Path

from smoothcert.data import load_dataset
from smoothcert.jobs.evaluate import certify_dataset, source_record
from smoothcert.runtime.distributed import Distributed, local
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.smoothing.checkpoint import load_smoothed
from smoothcert.training.config import TrainConfig
from smoothcert.training.loop import train


def train_and_certify(config: TrainConfig, certify: CertifySettings, progress: bool = True,
                      env: Distributed | None = None) -> dict[str, Path]:
    """Train ``config`` (resuming from ``out_dir/checkpoint.pt`` when it exists), then certify
    the test split into ``out_dir/certify.tsv`` (one file per algorithm, see
    :func:`smoothcert.jobs.evaluate.output_paths`; resumed when they hold rows made with the same
    checkpoint and settings, refused when those differ); returns the TSVs by algorithm. Under
    ``torchrun``, pass the entry point's process group as ``env``: both steps are then shared
    between the processes. Raises :class:`smoothcert.training.diagnostics.TrainingDiverged` when
    the loss stops being finite."""
    env = env or local(config.device)
    checkpoint = train(config, resume=(Path(config.out_dir) / "checkpoint.pt").is_file(), progress=progress, env=env)
    smoothed, _ = load_smoothed(checkpoint, env.device)
    dataset = load_dataset(config.dataset, "test", config.data_dir)
    metadata = source_record(checkpoint, config.dataset, "test", env.device)
    return certify_dataset(smoothed, dataset, Path(config.out_dir) / "certify.tsv", certify, progress=progress and env.main,
                           rank=env.rank, world=env.world, metadata=metadata, resume=True)
