"""Train a base classifier (or resume its training) and certify its test split: the step the
demo, the study and the paper's cells share."""

from __future__ import annotations

from pathlib import Path

from smoothcert.checkpoint import load_smoothed
from smoothcert.data import load_dataset
from smoothcert.distributed import setup_distributed, teardown
from smoothcert.evaluate import CertifySettings, certify_dataset, source_record
from smoothcert.train import TrainConfig, train


def train_and_certify(config: TrainConfig, certify: CertifySettings, progress: bool = True) -> dict[str, Path]:
    """Train ``config`` (resuming from ``out_dir/checkpoint.pt`` when it exists), then certify
    the test split into ``out_dir/certify.tsv`` (one file per algorithm, see
    :func:`smoothcert.evaluate.output_paths`; resumed when they hold rows made with the same
    checkpoint and settings, refused when those differ); returns the TSVs by algorithm. Under ``torchrun``
    both steps are shared between the processes. Raises :class:`smoothcert.train.TrainingDiverged`
    when the loss stops being finite."""
    env = setup_distributed(config.device)
    checkpoint = train(config, resume=(Path(config.out_dir) / "checkpoint.pt").is_file(), progress=progress)
    smoothed, _ = load_smoothed(checkpoint, env.device)
    dataset = load_dataset(config.dataset, "test", config.data_dir)
    metadata = source_record(checkpoint, config.dataset, "test", env.device)
    paths = certify_dataset(smoothed, dataset, Path(config.out_dir) / "certify.tsv", certify, progress=progress and env.main,
                            rank=env.rank, world=env.world, metadata=metadata, resume=True)
    teardown(env)
    return paths
