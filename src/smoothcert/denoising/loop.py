"""Train a denoiser in front of a frozen classifier (``smoothcert train-denoiser``): the loop of
:mod:`smoothcert.training.loop` (global batches, noise per step from the seed, resume, log.csv,
torchrun), with Adam and Salman et al.'s objectives (:mod:`smoothcert.denoising.objectives`)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from smoothcert.data import DatasetInfo, dataset_info, load_dataset
from smoothcert.denoising.config import DenoiserConfig
from smoothcert.denoising.objectives import mse_objective, stability_objective
from smoothcert.models.checkpoint import DENOISER_FORMAT, file_digest, load_checkpoint, load_classifier, save_denoiser_checkpoint
from smoothcert.models.denoised import DenoisedClassifier, check_denoiser_fits
from smoothcert.models.dncnn import DnCNN
from smoothcert.runtime.distributed import Distributed, agreed_any, local
from smoothcert.runtime.seeding import EVAL_NOISE, INIT, TRAIN_NOISE, derive_seed, generator_for, noise_source
from smoothcert.storage.atomic import ensure_writable_folder, remove_stale_temporaries
from smoothcert.training.diagnostics import TrainingDiverged
from smoothcert.training.epoch_log import Board, read_log, write_log
from smoothcert.training.loop import GlobalBatchSampler, local_rows, resumed_state, run_epochs

LOG_FIELDS = ("epoch", "lr", "objective", "loss", "test_mse", "test_noisy_acc", "seconds")
"""The columns of a denoiser's ``log.csv``: the epoch's objective and mean loss, and on the test
split (one noise draw per image) the denoised images' MSE and the pair's accuracy."""


@dataclass
class DenoiserRun:
    """What a denoiser's run trains with: the pair (denoiser and frozen classifier), the denoiser's
    DistributedDataParallel wrapper, optimizer and schedule, the data, and where it stands."""

    config: DenoiserConfig
    env: Distributed
    info: DatasetInfo
    pair: DenoisedClassifier
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: GlobalBatchSampler
    loader: DataLoader
    test_set: Dataset | None
    classifier_sha256: str
    start_epoch: int
    log_rows: list[dict[str, Any]]

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.config.out_dir) / "checkpoint.pt"


def prepare_denoiser_run(config: DenoiserConfig, env: Distributed, resume: bool) -> DenoiserRun:
    """Load the frozen classifier and its dataset, build the denoiser (from the seed, or from
    ``init_denoiser``'s weights), a new Adam and its schedule, and restore them from
    ``out_dir/checkpoint.pt`` with ``resume``; every refusal comes before any training."""
    classifier, entries = load_classifier(config.classifier, env.device, sigma=config.sigma)
    digest, info = file_digest(config.classifier), dataset_info(entries["dataset"])
    train_set = load_dataset(info.name, "train", config.data_dir)
    test_set = load_dataset(info.name, "test", config.data_dir) if env.main else None
    path = Path(config.out_dir) / "checkpoint.pt"
    state = resumed_state(config, path, resume, env.device)
    if state is not None and state["classifier_sha256"] != digest:
        raise ValueError(f"cannot resume {path}: its classifier {config.classifier} has changed since (its SHA-256 differs)")
    initial = initial_weights(config, info) if config.init_denoiser is not None and state is None else None
    if env.main:
        ensure_writable_folder(path.parent)
        remove_stale_temporaries(path)
    torch.manual_seed(derive_seed(config.seed, INIT))
    denoiser = DnCNN(info.input_shape[0], config.depth, config.width).to(env.device)
    check_denoiser_fits(denoiser, info.input_shape, env.device)
    if initial is not None:
        denoiser.load_state_dict(initial)
    optimizer, scheduler = new_optimizer(config, denoiser, config.lr)
    start_epoch, log_rows = 0, []
    if state is not None:
        denoiser.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, log_rows = int(state["epoch"]), read_log(path.parent / "log.csv", int(state["epoch"]), LOG_FIELDS)
    wrapped = denoiser
    if env.world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(denoiser, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    sampler = GlobalBatchSampler(len(train_set), config.batch_size, env.rank, env.world, config.seed)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.workers, pin_memory=env.device.type == "cuda")
    return DenoiserRun(config, env, info, DenoisedClassifier(denoiser, classifier), wrapped, optimizer, scheduler, sampler, loader,
                       test_set, digest, start_epoch, log_rows)


def initial_weights(config: DenoiserConfig, info: DatasetInfo) -> dict[str, torch.Tensor]:
    """The weights of the denoiser checkpoint ``config.init_denoiser``, refused in one line unless
    it is a denoiser of ``info``'s dataset with this run's depth and width."""
    path = config.init_denoiser
    entries = load_checkpoint(path)
    if entries.get("format") != DENOISER_FORMAT:
        raise ValueError(f"init_denoiser {path} is not a denoiser checkpoint (smoothcert train-denoiser writes one)")
    shape = (int(entries["hparams"]["depth"]), int(entries["hparams"]["width"]))
    if entries["dataset"] != info.name or shape != (config.depth, config.width):
        raise ValueError(f"init_denoiser {path} is a denoiser of {entries['dataset']} with depth {shape[0]} and width {shape[1]}; "
                         f"this run's is of {info.name} with depth {config.depth} and width {config.width}")
    return entries["state_dict"]


def new_optimizer(config: DenoiserConfig, denoiser: torch.nn.Module,
                  lr: float) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """A new Adam at ``lr`` over the denoiser's parameters and its schedule (lr / 10 every ``lr_step`` epochs)."""
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=lr, weight_decay=config.weight_decay)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=0.1)


def step_noise(config: DenoiserConfig, shape: tuple[int, ...], epoch: int, step: int, env: Distributed) -> torch.Tensor:
    """Noise ``(b, *shape)`` for this process's rows of global batch ``step`` of ``epoch``."""
    generator = generator_for(env.device, config.seed, TRAIN_NOISE, epoch, step)
    rows = local_rows(config.batch_size, 1, env.rank, env.world).to(env.device)
    return config.sigma * torch.randn((config.batch_size, *shape), generator=generator, device=env.device)[rows]


def train_denoiser_epoch(run: DenoiserRun, epoch: int, progress: bool) -> float:
    """Train epoch ``epoch`` (from 0) with its objective; the mean loss over its steps (it stops
    early on every process once the running loss of any process is not finite)."""
    config, env = run.config, run.env
    objective = config.objective_of(epoch)
    if config.starts_finetuning(epoch):  # a new run from the MSE denoiser, as Salman et al.'s Stab+MSE
        run.optimizer, run.scheduler = new_optimizer(config, run.pair.denoiser, config.finetune_lr)
    run.sampler.set_epoch(epoch)
    run.pair.train()
    total = torch.zeros((), device=env.device)
    bar = tqdm(run.loader, desc=f"denoiser ({objective}) epoch {epoch + 1}/{config.epochs}",
               disable=None if progress and env.main else True, leave=False)
    for step, (x, _) in enumerate(bar):
        x = x.to(env.device, non_blocking=True)
        denoised = run.wrapped(x + step_noise(config, run.info.input_shape, epoch, step, env))
        loss = mse_objective(denoised, x) if objective == "mse" else stability_objective(run.pair.classifier, denoised, x)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        total += loss.detach()
        if step % 20 == 19 and agreed_any(not math.isfinite(float(total)), env):
            break
    if env.world > 1:
        torch.distributed.all_reduce(total)
        total /= env.world
    return float(total) / len(run.loader)


def evaluate_pair(pair: DenoisedClassifier, dataset: Dataset, config: DenoiserConfig, device: torch.device,
                  epoch: int) -> tuple[float, float]:
    """On ``dataset``, one noise draw per image: the denoised images' mean squared error and the
    pair's accuracy."""
    generator = generator_for(device, config.seed, EVAL_NOISE, epoch)
    squared = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    pair.eval()
    with torch.no_grad():
        for x, labels in DataLoader(dataset, batch_size=200):
            x, labels = x.to(device), labels.to(device)
            denoised = pair.denoiser(x + config.sigma * torch.randn(x.shape, generator=generator, device=device))
            squared += ((denoised - x) ** 2).mean(dim=tuple(range(1, x.ndim))).sum(dtype=torch.float64)
            correct += (pair.classifier(denoised).argmax(1) == labels).sum()
    pair.train()
    return float(squared) / len(dataset), int(correct) / len(dataset)


def finish_denoiser_epoch(run: DenoiserRun, epoch: int, loss: float, lr: float, started: float, board: Board,
                          progress: bool) -> None:
    """On the main process: evaluate, log the epoch and rewrite the checkpoint."""
    config = run.config
    test_mse, accuracy = evaluate_pair(run.pair, run.test_set, config, run.env.device, epoch)
    row = dict(epoch=epoch + 1, lr=lr, objective=config.objective_of(epoch), loss=loss, test_mse=test_mse, test_noisy_acc=accuracy,
               seconds=time.perf_counter() - started)
    run.log_rows.append(row)
    write_log(run.checkpoint_path.parent / "log.csv", run.log_rows, LOG_FIELDS)
    save_denoiser_checkpoint(run.checkpoint_path, hparams=asdict(config), classifier_sha256=run.classifier_sha256,
                             dataset=run.info.name, num_classes=run.info.num_classes, state_dict=run.pair.denoiser.state_dict(),
                             epoch=epoch + 1, optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                             noise=noise_source(run.env.device))
    board.add(row)
    if progress:
        tqdm.write(f"denoiser epoch {epoch + 1}/{config.epochs} ({row['objective']}): loss {loss:.4f}, test MSE {test_mse:.5f}, "
                   f"test accuracy under noise {accuracy:.3f} ({row['seconds']:.1f} s)")


def train_denoiser(config: DenoiserConfig, resume: bool = False, progress: bool = True, env: Distributed | None = None) -> Path:
    """Train a denoiser for the frozen classifier ``config.classifier``; returns the path of its
    checkpoint (``out_dir/checkpoint.pt``, rewritten atomically after every epoch, with
    ``out_dir/log.csv``), which :func:`~smoothcert.smoothing.checkpoint.load_smoothed` reads as the
    pair. The classifier is never updated. Under ``torchrun``, pass the entry point's process
    group as ``env``."""
    config.validate()
    env = env or local(config.device)
    run = prepare_denoiser_run(config, env, resume)
    board = Board(run.checkpoint_path.parent, LOG_FIELDS) if env.main else None

    def checked_epoch(epoch: int) -> float:
        loss = train_denoiser_epoch(run, epoch, progress)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the denoiser's loss became non-finite in epoch {epoch + 1}; the checkpoint of epoch {epoch} "
                                   f"is kept at {run.checkpoint_path}; lower the learning rate (--lr)")
        return loss

    return run_epochs(run, board, checked_epoch,
                      lambda epoch, loss, lr, started: finish_denoiser_epoch(run, epoch, loss, lr, started, board, progress))
