"""One training loop for every method of :mod:`smoothcert.training.methods` (the four of Algorithm 1
of the spec and the field's): the loop draws a step's noise, splits the batch into the method's
chunks and asks the method (:meth:`~smoothcert.training.methods.base.Method.step`) for each
chunk's loss.

The ``k`` noisy copies of a batch go through the network as one batch. Every random draw is a
function of the run's seed (:mod:`smoothcert.runtime.seeding`): the data order of epoch ``e``, the noise
of step ``s`` of epoch ``e``, drawn for the whole global batch, of which each process takes
its own rows. So ``torchrun --nproc_per_node N`` trains on the same global batches with the same
noise as one process (DistributedDataParallel averages the gradients of equal shards). Data
augmentation draws from torch's global generator (and the data-loading processes' seeds from it),
which is reseeded from (seed, epoch) when an epoch starts. So the state of every generator at an
epoch's start is a function of the seed and the epoch, and a checkpoint needs no generator
states: a run resumed from the checkpoint of epoch ``e`` trains epoch ``e + 1`` as the
uninterrupted run did.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from smoothcert.data import DatasetInfo, dataset_info, load_dataset
from smoothcert.storage.atomic import ensure_writable_folder, remove_stale_temporaries
from smoothcert.models import build_model
from smoothcert.models.checkpoint import load_checkpoint, refuse_non_finite_weights, save_checkpoint
from smoothcert.runtime.allocator import keep_heap_memory
from smoothcert.runtime.distributed import Distributed, agreed_any, local
from smoothcert.settings import declared_defaults, place_fields
from smoothcert.runtime.seeding import AUGMENT, DATA_ORDER, EVAL_NOISE, INIT, TRAIN_NOISE, derive_seed, generator_for, noise_source
from smoothcert.training.config import TrainConfig
from smoothcert.training.diagnostics import (EPOCH_STATS, TrainingDiverged, batch_stats, named_stats, refuse_non_finite,
                                             warn_of_divergence)
from smoothcert.training.epoch_log import Board, read_log, write_log
from smoothcert.training.methods import StepInputs, method_named
from smoothcert.training.objectives import LossParts
from smoothcert.training.schedules import learning_rate_factor, regularizer_weight
from smoothcert.training.soft_labels import read_votes


def local_rows(global_batch: int, chunks: int, rank: int, world: int) -> torch.Tensor:
    """The rows of a global batch that process ``rank`` of ``world`` takes: of each of the
    ``chunks`` consecutive chunks of the global batch, its ``rank``-th equal share. Locally, the
    ``chunks`` equal pieces of the process's rows are then its shares of the chunks, in order."""
    chunk = global_batch // chunks
    share = chunk // world
    return torch.cat([torch.arange(c * chunk + rank * share, c * chunk + (rank + 1) * share) for c in range(chunks)])


class GlobalBatchSampler(Sampler[list[int]]):
    """Global batches of a seeded permutation of the dataset; process ``rank`` of ``world`` gets
    its :func:`local_rows` of each (with one chunk: rows ``rank * b ... (rank + 1) * b - 1``,
    ``b = global_batch / world``). The last incomplete global batch is dropped so that every shard
    has the same size."""

    def __init__(self, size: int, global_batch: int, rank: int, world: int, seed: int, chunks: int = 1) -> None:
        if global_batch % (world * chunks):
            raise ValueError(f"batch_size {global_batch} must be divisible by the number of processes {world} times chunks {chunks}")
        if size < global_batch:
            raise ValueError(f"the training set has {size} examples, fewer than one batch of {global_batch}")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.rows = local_rows(global_batch, chunks, rank, world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.global_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.size, generator=generator_for("cpu", self.seed, DATA_ORDER, self.epoch))
        for step in range(len(self)):
            yield order[step * self.global_batch + self.rows].tolist()


def noise_for_step(config: TrainConfig, shape: tuple[int, ...], epoch: int, step: int, env: Distributed) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Noise ``(b, k, *shape)`` for this process's rows (:func:`local_rows`) of global batch
    ``step`` of ``epoch``; for the single-draw variant, the index of the copy each example's
    ``l_per`` uses; and the method's own draws (SmoothMix's mixing weights, CAT-RS's uniforms)."""
    generator = generator_for(env.device, config.seed, TRAIN_NOISE, epoch, step)
    rows = local_rows(config.batch_size, config.chunks, env.rank, env.world).to(env.device)
    noise = torch.randn((config.batch_size, config.k, *shape), generator=generator, device=env.device)[rows]
    noise.mul_(config.sigma)
    draw = None
    if config.single_draw_per:
        draw = torch.randint(config.k, (config.batch_size,), generator=generator, device=env.device)[rows]
    extra = method_named(config.method).draws(config, generator, env.device)
    return noise, draw, None if extra is None else extra[rows]


def training_step(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor,
                  draw: torch.Tensor | None, config: TrainConfig, attack_model: torch.nn.Module | None = None,
                  epoch: int = 0, extra: torch.Tensor | None = None, target: torch.Tensor | None = None) -> LossParts:
    """Loss of one chunk of epoch ``epoch`` under ``config.method`` (backward not taken), with the
    epoch's lambda (:func:`~smoothcert.training.schedules.regularizer_weight`). ``attack_model``
    is the module an attack differentiates (the unwrapped model under DistributedDataParallel).
    ``extra`` holds the method's own draws (SmoothMix's mixing weights, CAT-RS's uniforms) and
    ``target`` CAT-RS's smoothed predictions of the batch."""
    lam = regularizer_weight(config, epoch)
    if lam != config.lam:  # lambda deferred (lam_delay)
        config = replace(config, lam=lam)
    return method_named(config.method).step(model, attack_model or model, StepInputs(x, labels, noise, draw, extra, target), config,
                                            epoch)


def noisy_test_accuracy(model: torch.nn.Module, dataset, config: TrainConfig, device: torch.device, epoch: int) -> float:
    """Accuracy of the base classifier on the test split under one noise draw per image."""
    model.eval()
    correct = torch.zeros((), device=device)
    loader = DataLoader(dataset, batch_size=500, num_workers=config.workers)
    generator = generator_for(device, config.seed, EVAL_NOISE, epoch)
    with torch.inference_mode():
        for x, labels in loader:
            x, labels = x.to(device), labels.to(device)
            noisy = x + config.sigma * torch.randn(x.shape, generator=generator, device=device)
            correct += (model(noisy).argmax(1) == labels).sum()
    model.train()
    return float(correct) / len(dataset)


RESUMABLE_CHANGES = place_fields(TrainConfig) | {"epochs"}
"""Fields a resumed run may change: where and how it runs (the settings declared ``place``), and
how many epochs in all (with the cosine schedule, the rate of the epochs still to come follows
the new total)."""


def resumed_state(config: Any, checkpoint_path: Path, resume: bool, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to continue from (``resume``), or None to start afresh; refuses to start
    over an existing checkpoint, and to resume one trained with other settings than ``config``
    (a settings dataclass: every field but those declared ``place`` and ``epochs``; a setting the
    checkpoint predates reads as declared) or whose noise came from another kind of device."""
    if not resume:
        if checkpoint_path.is_file():
            raise ValueError(f"{checkpoint_path} already exists; pass --resume (resume=True) to continue it, or choose another out_dir")
        return None
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint_path}")
    state = load_checkpoint(checkpoint_path, map_location=device)
    refuse_non_finite_weights(state["state_dict"], checkpoint_path)
    settings = type(config)
    stored, wanted = {**declared_defaults(settings), **state["hparams"]}, asdict(config)  # settings added since: as declared
    differences = [f"{key} was {stored[key]!r}, now {wanted[key]!r}" for key in wanted
                   if key not in place_fields(settings) | {"epochs"} and stored[key] != wanted[key]]
    if differences:
        raise ValueError(f"cannot resume {checkpoint_path} with other settings than it was trained with: {'; '.join(differences)}")
    if int(state["epoch"]) > config.epochs:
        raise ValueError(f"cannot resume {checkpoint_path}: it has trained {state['epoch']} epochs, more than epochs={config.epochs}")
    if state.get("noise", noise_source(device)) != noise_source(device):  # checkpoints before the entry carry none
        raise ValueError(f"cannot resume {checkpoint_path}: its training noise was drawn on {state['noise']}, this run would draw it "
                         f"on {noise_source(device)} (another noise stream); resume on the same kind of device")
    return state


@dataclass
class TrainingRun:
    """What a run trains with: the model (and its DistributedDataParallel wrapper), optimizer and
    schedule, the data, and where it stands (the epochs done and their log rows)."""

    config: TrainConfig
    env: Distributed
    info: DatasetInfo
    model: torch.nn.Module
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: GlobalBatchSampler
    loader: DataLoader
    test_set: Dataset | None
    soft_labels: torch.Tensor | None
    """CAT-RS's smoothed prediction of each training example, ``(N, C)``; None for other methods."""
    out_dir: Path
    start_epoch: int
    log_rows: list[dict[str, Any]]

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"


def prepare_run(config: TrainConfig, env: Distributed, resume: bool) -> TrainingRun:
    """Load the data, build the model, optimizer and schedule (from the seed), and restore them
    from ``out_dir/checkpoint.pt`` with ``resume``."""
    info = dataset_info(config.dataset)
    train_set = load_dataset(config.dataset, "train", config.data_dir)  # a missing or malformed folder stops the run here
    test_set = load_dataset(config.dataset, "test", config.data_dir) if env.main else None
    out_dir = Path(config.out_dir)
    state = resumed_state(config, out_dir / "checkpoint.pt", resume, env.device)
    if env.main:
        ensure_writable_folder(out_dir)
        remove_stale_temporaries(out_dir / "checkpoint.pt")
    torch.manual_seed(derive_seed(config.seed, INIT))
    model = _fitted_model(config, info, env.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: learning_rate_factor(config, epoch))
    start_epoch, log_rows = 0, []
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, log_rows = int(state["epoch"]), read_log(out_dir / "log.csv", int(state["epoch"]))
    wrapped = model
    if env.world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    soft_labels = None
    if method_named(config.method).soft_targets:
        soft_labels = torch.as_tensor(read_votes(config.catrs_votes, config.dataset, len(train_set)), dtype=torch.float32, device=env.device)
    sampler = GlobalBatchSampler(len(train_set), config.batch_size, env.rank, env.world, config.seed, config.chunks)
    loader = DataLoader(WithIndex(train_set), batch_sampler=sampler, num_workers=config.workers, pin_memory=env.device.type == "cuda")
    return TrainingRun(config, env, info, model, wrapped, optimizer, scheduler, sampler, loader, test_set, soft_labels, out_dir,
                       start_epoch, log_rows)


def _fitted_model(config: TrainConfig, info: DatasetInfo, device: torch.device) -> torch.nn.Module:
    """``config.arch`` for the dataset, refused in one line when it cannot take the dataset's
    inputs (one forward pass of a zero image, before any training)."""
    model = build_model(config.arch, info.num_classes, info.mean, info.std).to(device)
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *info.input_shape), device=device))
    except RuntimeError as error:
        raise ValueError(f"architecture {config.arch!r} does not take the inputs of {config.dataset!r} (shape {info.input_shape}): "
                         f"{str(error).splitlines()[0][:160]}; choose another --arch") from None
    return model.train()


class WithIndex(Dataset):
    """A dataset whose items carry their index: ``(x, label, index)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        x, label = self.dataset[index]
        return x, label, index


def train_one_epoch(run: TrainingRun, epoch: int, progress: bool) -> dict[str, float]:
    """Train epoch ``epoch`` (from 0); its :data:`~smoothcert.training.diagnostics.EPOCH_STATS`
    by name, means over its optimizer steps (``chunks`` per global batch, each on its chunk's
    ``batch_size / chunks`` examples and their noisy copies, as the field's scripts step; the epoch
    stops early on every process once the running loss of any process is not finite)."""
    config, env = run.config, run.env
    run.sampler.set_epoch(epoch)
    torch.manual_seed(derive_seed(config.seed, AUGMENT, epoch))
    sums = torch.zeros(len(EPOCH_STATS), device=env.device)
    bar = tqdm(run.loader, desc=f"{config.method} epoch {epoch + 1}/{config.epochs}", disable=None if progress and env.main else True,
               leave=False)
    for step, (x, labels, index) in enumerate(bar):
        x, labels = x.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
        noise, draw, extra = noise_for_step(config, run.info.input_shape, epoch, step, env)
        target = run.soft_labels[index.to(env.device)] if run.soft_labels is not None else None
        sums += train_on_batch(run.wrapped, run.optimizer, (x, labels, noise, draw, extra, target), config, epoch, run.model)
        if step % 20 == 19:
            running = named_stats(sums, (step + 1) * config.chunks)
            if agreed_any(not math.isfinite(running["loss"]), env):
                break
            bar.set_postfix(loss=f"{running['loss']:.3f}", noisy_acc=f"{running['train_noisy_acc']:.3f}")
    if env.world > 1:  # every process's share of the global batches
        torch.distributed.all_reduce(sums)
        sums /= env.world
    return named_stats(sums, len(run.loader) * config.chunks)


def train_on_batch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor | None, ...], config: TrainConfig,
                   epoch: int, attack_model: torch.nn.Module | None = None) -> torch.Tensor:
    """One loader batch ``(x, labels, noise, draw, extra, target)`` in the method's step layout:
    ``config.chunks`` optimizer steps, each on ``batch_size / chunks`` consecutive examples; the sum
    of the steps' :func:`~smoothcert.training.diagnostics.batch_stats`."""
    sums = 0
    for piece in zip(*(_pieces(t, config.chunks) for t in batch)):
        parts = training_step(model, *piece[:4], config, attack_model=attack_model, epoch=epoch, extra=piece[4], target=piece[5])
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()
        sums = sums + batch_stats(parts)
    return sums


def _pieces(batch: torch.Tensor | None, chunks: int) -> tuple[torch.Tensor | None, ...]:
    """``batch`` in ``chunks`` equal consecutive pieces along its first dimension (None: ``chunks`` Nones)."""
    return (None,) * chunks if batch is None else batch.chunk(chunks)


def finish_epoch(run: TrainingRun, epoch: int, stats: dict[str, float], lr: float, started: float, board: Board,
                 progress: bool) -> None:
    """On the main process: evaluate under noise, log the epoch, and rewrite the checkpoint."""
    config, info = run.config, run.info
    row = dict(epoch=epoch + 1, lr=lr, **stats, test_noisy_acc=noisy_test_accuracy(run.model, run.test_set, config, run.env.device, epoch),
               seconds=time.perf_counter() - started)
    run.log_rows.append(row)
    write_log(run.out_dir / "log.csv", run.log_rows)
    save_checkpoint(run.checkpoint_path, num_classes=info.num_classes, hparams=asdict(config), state_dict=run.model.state_dict(), epoch=epoch + 1,
                    optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(), noise=noise_source(run.env.device))
    board.add(row)
    if progress:
        tqdm.write(f"{config.method} epoch {epoch + 1}/{config.epochs}: loss {stats['loss']:.4f}, l_adre {stats['l_adre']:.3f}, "
                   f"train acc under noise {stats['train_noisy_acc']:.3f} (all copies right {stats['all_correct']:.3f}, "
                   f"largest logit {stats['max_logit']:.1f}), test acc under noise {row['test_noisy_acc']:.3f} ({row['seconds']:.1f} s)")


def run_epochs(run: Any, board: Board | None, train_epoch: Callable[[int], Any],
               finish: Callable[[int, Any, float, float], None]) -> Path:
    """Train each remaining epoch of ``run`` (a run of :func:`train` or of the denoiser's loop):
    ``train_epoch(epoch)`` returns the epoch's statistics (refusing what must stop the run), the
    schedule steps, and the main process ``finish``es the epoch (evaluate, log, checkpoint) with
    its statistics, learning rate and start time. The board is closed whatever happens; under a
    process group, every process waits until the last checkpoint is written."""
    env = run.env
    try:
        for epoch in range(run.start_epoch, run.config.epochs):
            started = time.perf_counter()
            stats = train_epoch(epoch)
            lr = run.optimizer.param_groups[0]["lr"]
            run.scheduler.step()
            if env.main:
                finish(epoch, stats, lr, started)
    finally:
        if board is not None:
            board.close()
    if env.world > 1:  # the last checkpoint is written (by process 0) before any process reads it
        torch.distributed.barrier()
    return run.checkpoint_path


def train(config: TrainConfig, resume: bool = False, progress: bool = True, env: Distributed | None = None) -> Path:
    """Train a base classifier; returns the path of its checkpoint (``out_dir/checkpoint.pt``,
    rewritten atomically after every epoch, with ``out_dir/log.csv``). ``resume`` continues from
    the checkpoint in ``out_dir``. Under ``torchrun``, pass the process group of the entry point
    (:func:`smoothcert.runtime.distributed.process_group`) as ``env``; every process returns
    once the final checkpoint is written."""
    config.validate()
    env = env or local(config.device)
    if env.device.type == "cpu":
        keep_heap_memory()  # no page-fault tax on large batches (smoothcert.runtime.allocator)
    run = prepare_run(config, env, resume)
    board = Board(run.out_dir) if env.main else None
    run.model.train()
    best_accuracy = max([float(row["train_noisy_acc"]) for row in run.log_rows], default=0.0)

    def judged_epoch(epoch: int) -> dict[str, float]:
        nonlocal best_accuracy
        stats = train_one_epoch(run, epoch, progress)
        refuse_non_finite(stats, config, epoch, run.checkpoint_path)
        best_accuracy = max(best_accuracy, stats["train_noisy_acc"])
        warn_of_divergence(stats, best_accuracy, config, epoch)
        return stats

    return run_epochs(run, board, judged_epoch, lambda epoch, stats, lr, started: finish_epoch(run, epoch, stats, lr, started, board, progress))


__all__ = ["train", "train_one_epoch", "training_step", "GlobalBatchSampler", "TrainingDiverged"]
