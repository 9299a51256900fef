"""One training loop for the four methods of Algorithm 1 of the spec.

=============  ===============================  =================================
method         inputs of the loss                loss
=============  ===============================  =================================
``basic``      ``x + delta_j``                  ``l_per`` (Cohen et al.)
``adre``       ``x + delta_j``                  ``l_per - lam * l_adre`` (eq. 5-8)
``smoothadv``  ``x_adv + delta_j``, eq. 12, 0    ``l_per`` (Salman et al.)
``adre_adv``   ``x_adv + delta_j``, eq. 12-13    ``l_per - lam * l_adre``
=============  ===============================  =================================

The ``k`` noisy copies of a batch go through the network as one batch. Every random draw is a
function of the run's seed (:mod:`smoothcert.seeding`): the data order of epoch ``e``, the noise
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

import csv
import io
import math
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from smoothcert.allocator import keep_heap_memory
from smoothcert.attacks import smoothed_pgd
from smoothcert.checkpoint import load_checkpoint, save_checkpoint
from smoothcert.data import dataset_info, load_dataset
from smoothcert.distributed import Distributed, setup_distributed, teardown
from smoothcert.files import ensure_writable_folder, remove_stale_temporaries, write_text_atomic
from smoothcert.losses import LossParts, regularized_risk
from smoothcert.models import ARCHITECTURES, build_model
from smoothcert.seeding import AUGMENT, DATA_ORDER, EVAL_NOISE, INIT, TRAIN_NOISE, derive_seed, generator_for

METHODS = ("basic", "adre", "smoothadv", "adre_adv")
ADVERSARIAL = ("smoothadv", "adre_adv")
REGULARIZED = ("adre", "adre_adv")
RUNAWAY_L_ADRE = 30.0
"""Mean ``l_adre`` of an epoch above which the run is warned that ADRE is running away: the
plug-in runner-up probability is below ``exp(-30)``, far past anything a float32 softmax resolves."""
COLLAPSE_SHARE = 0.5
"""An epoch whose training accuracy under noise is below this share of the best so far is
reported as a collapse."""


class TrainingDiverged(FloatingPointError):
    """The loss became non-finite; the checkpoint of the last finished epoch is kept."""


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in its checkpoints as ``hparams``."""

    dataset: str = "mnist"
    arch: str = "small_cnn"
    method: str = "basic"
    sigma: float = 0.25
    k: int = 1
    lam: float = 0.0
    single_draw_per: bool = False
    adre_cap: float | None = None
    eps: float = 0.0
    attack_steps: int = 1
    eps_warmup: int = 0
    epochs: int = 15
    batch_size: int = 100
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "step"
    lr_step: int = 50
    lr_gamma: float = 0.1
    warmup_epochs: int = 0
    seed: int = 0
    workers: int = 0
    data_dir: str | None = None
    out_dir: str = "runs/train"
    device: str | None = None

    def validate(self) -> "TrainConfig":
        info = dataset_info(self.dataset)  # raises on an unknown dataset
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 0 < self.sigma < math.inf:
            problems.append(f"sigma must be positive and finite, got {self.sigma}")
        if self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed}")
        if self.workers < 0:
            problems.append(f"workers must be 0 (load in this process) or more, got {self.workers}")
        for name in ("lr", "momentum", "weight_decay", "lr_gamma", "label_smoothing"):
            if not 0 <= getattr(self, name) < math.inf:
                problems.append(f"{name} must be a non-negative finite number, got {getattr(self, name)}")
        if self.label_smoothing >= 1:
            problems.append(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.lr_step < 1 or self.warmup_epochs < 0:
            problems.append(f"lr_step must be at least 1 and warmup_epochs at least 0, got {self.lr_step} and {self.warmup_epochs}")
        if self.k < 1:
            problems.append(f"k (noisy copies per example) must be at least 1, got {self.k}")
        if not 0 <= self.lam < math.inf:
            problems.append(f"lam must be non-negative and finite, got {self.lam}")
        if self.eps_warmup < 0:
            problems.append(f"eps_warmup must be 0 (off) or a number of epochs, got {self.eps_warmup}")
        if not 0 <= self.eps < math.inf or self.attack_steps < 1:
            problems.append(f"eps must be non-negative and finite and attack_steps at least 1, got eps={self.eps}, "
                            f"attack_steps={self.attack_steps}")
        if self.method in REGULARIZED and self.lam == 0:
            problems.append(f"method {self.method!r} needs lam > 0 (lam = 0 is {'basic' if self.method == 'adre' else 'smoothadv'})")
        if self.method in ADVERSARIAL and (self.eps <= 0 or self.attack_steps < 1):
            problems.append(f"method {self.method!r} needs eps > 0 and attack_steps >= 1, got eps={self.eps}, attack_steps={self.attack_steps}")
        if self.adre_cap is not None and not 0 < self.adre_cap < math.inf:
            problems.append(f"adre_cap must be positive and finite, got {self.adre_cap}")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")
        if self.schedule not in ("step", "cosine"):
            problems.append(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.schedule == "cosine" and self.warmup_epochs >= self.epochs:
            problems.append(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        if self.arch not in ARCHITECTURES:
            problems.append(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if info.needs_data_dir and not self.data_dir:
            problems.append(f"dataset {self.dataset!r} is read from a folder: set data_dir (--data-dir)")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # the embedded MNIST digits on a CPU: ours (the paper has no MNIST experiment), the small CNN
    # and recipe measured in docs/results.md
    "mnist": dict(dataset="mnist", arch="small_cnn", epochs=15, batch_size=100, lr=0.05, momentum=0.9,
                  weight_decay=5e-4, schedule="step", lr_step=10, lr_gamma=0.1),
    # the paper's CIFAR-10 recipe (its "Experiments"): ResNet-110, SGD, batch 400, lr 0.1 x0.1
    # every 50 epochs, 150 epochs. The paper is silent on momentum and weight decay: 0.9 and 1e-4
    # are the defaults of Cohen et al.'s and Salman et al.'s training scripts. The attack radius
    # ramps up over 10 epochs as in Salman et al.'s CIFAR-10 SmoothAdv runs (adversarial methods).
    "cifar10": dict(dataset="cifar10", arch="cifar_resnet110", epochs=150, batch_size=400, lr=0.1, momentum=0.9,
                    weight_decay=1e-4, schedule="step", lr_step=50, lr_gamma=0.1, eps_warmup=10, workers=4),
    # the paper's ImageNet recipe (its "Experiments"): ResNet-50, momentum 0.875, weight decay
    # 1/32768, label smoothing 0.1, cosine schedule over 50 epochs after 8 warm-up epochs, batch 256
    "imagenet": dict(dataset="imagenet", arch="resnet50", epochs=50, batch_size=256, lr=0.1, momentum=0.875,
                     weight_decay=1 / 32768, label_smoothing=0.1, schedule="cosine", warmup_epochs=8, workers=8),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe (``mnist``, ``cifar10``, ``imagenet``) with any field overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown training options {sorted(unknown)}")
    return TrainConfig(**{**PRESETS[name], **overrides})


def learning_rate_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier of ``config.lr`` in epoch ``epoch`` (from 0). ``step``: ``gamma`` every
    ``lr_step`` epochs. ``cosine`` (the paper's ImageNet schedule): linear warm-up
    ``(epoch + 1) / warmup`` then ``(1 + cos(pi * t / (epochs - warmup))) / 2`` with ``t`` the
    epochs since warm-up."""
    if config.schedule == "step":
        return config.lr_gamma ** (epoch // config.lr_step)
    if epoch < config.warmup_epochs:
        return (epoch + 1) / config.warmup_epochs
    return 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / (config.epochs - config.warmup_epochs)))


class GlobalBatchSampler(Sampler[list[int]]):
    """Global batches of a seeded permutation of the dataset; process ``rank`` of ``world`` gets
    rows ``rank * b ... (rank + 1) * b - 1`` of each, ``b = global_batch / world``. The last
    incomplete global batch is dropped so that every shard has the same size."""

    def __init__(self, size: int, global_batch: int, rank: int, world: int, seed: int) -> None:
        if global_batch % world:
            raise ValueError(f"batch_size {global_batch} must be divisible by the number of processes {world}")
        if size < global_batch:
            raise ValueError(f"the training set has {size} examples, fewer than one batch of {global_batch}")
        self.size, self.global_batch, self.rank, self.world, self.seed = size, global_batch, rank, world, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.global_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.size, generator=generator_for("cpu", self.seed, DATA_ORDER, self.epoch))
        local = self.global_batch // self.world
        for step in range(len(self)):
            start = step * self.global_batch + self.rank * local
            yield order[start:start + local].tolist()


def _noise_for_step(config: TrainConfig, shape: tuple[int, ...], epoch: int, step: int, env: Distributed) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Noise ``(b, k, *shape)`` for this process's rows of global batch ``step`` of ``epoch``,
    and, for the single-draw variant, the index of the copy each example's ``l_per`` uses."""
    generator = generator_for(env.device, config.seed, TRAIN_NOISE, epoch, step)
    local = config.batch_size // env.world
    rows = slice(env.rank * local, (env.rank + 1) * local)
    noise = torch.randn((config.batch_size, config.k, *shape), generator=generator, device=env.device)[rows]
    noise.mul_(config.sigma)
    draw = None
    if config.single_draw_per:
        draw = torch.randint(config.k, (config.batch_size,), generator=generator, device=env.device)[rows]
    return noise, draw


def attack_radius(config: TrainConfig, epoch: int) -> float:
    """The l2 radius of the training attack in epoch ``epoch`` (from 0): ``eps``, or with
    ``eps_warmup = W`` epochs, ``eps * min(1, (epoch + 1) / W)``, the linear ramp of SmoothAdv's
    training script (Salman et al.'s ``--warmup``; their CIFAR-10 runs use 10 epochs)."""
    if config.eps_warmup:
        return config.eps * min(1.0, (epoch + 1) / config.eps_warmup)
    return config.eps


def training_step(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor,
                  draw: torch.Tensor | None, config: TrainConfig, attack_model: torch.nn.Module | None = None, epoch: int = 0):
    """Loss of one batch of epoch ``epoch`` under ``config.method`` (backward not taken).
    ``attack_model`` is the module the attack differentiates (the unwrapped model under
    DistributedDataParallel); the attack maximizes the objective the loss uses, ADRE cap included."""
    lam = config.lam if config.method in REGULARIZED else 0.0
    if config.method in ADVERSARIAL:
        attacked = attack_model or model
        attacked.eval()
        x = smoothed_pgd(attacked, x, labels, noise, attack_radius(config, epoch), config.attack_steps, lam=lam, adre_cap=config.adre_cap)
        attacked.train()
    batch, copies = noise.shape[:2]
    logits = model((x.unsqueeze(1) + noise).flatten(0, 1)).view(batch, copies, -1)
    return regularized_risk(logits, labels, lam, single_draw=draw, adre_cap=config.adre_cap, label_smoothing=config.label_smoothing)


def _noisy_test_accuracy(model: torch.nn.Module, dataset, config: TrainConfig, device: torch.device, epoch: int) -> float:
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


EPOCH_STATS = ("loss", "l_per", "l_adre", "train_noisy_acc", "all_correct", "max_logit")
"""Per-epoch training statistics, means over the epoch's batches: the loss and its parts, the
share of noisy copies classified correctly, the share of examples with every copy correct (where
ADRE's objective is unbounded below) and the mean of each example's largest logit."""
LOG_FIELDS = ("epoch", "lr", *EPOCH_STATS, "test_noisy_acc", "seconds")


def _batch_stats(parts: LossParts) -> torch.Tensor:
    """One batch's :data:`EPOCH_STATS`, in that order, on the device (no host synchronization)."""
    return torch.stack([parts.loss.detach(), parts.l_per.mean(), parts.l_adre.mean(), parts.correct.mean(),
                        parts.all_correct.mean(), parts.max_logit.mean()])


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _read_log(path: Path, up_to_epoch: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


RESUMABLE_CHANGES = frozenset({"epochs", "out_dir", "data_dir", "workers", "device"})
"""Fields a resumed run may change: where things are, how many epochs in all (with the cosine
schedule, the rate of the epochs still to come follows the new total)."""


def _resumed_state(config: TrainConfig, checkpoint_path: Path, resume: bool, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to continue from (``resume``), or None to start afresh; refuses to start
    over an existing checkpoint, and to resume one trained with other settings."""
    if not resume:
        if checkpoint_path.is_file():
            raise ValueError(f"{checkpoint_path} already exists; pass --resume (resume=True) to continue it, or choose another out_dir")
        return None
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint_path}")
    state = load_checkpoint(checkpoint_path, map_location=device)
    stored, wanted = {**asdict(TrainConfig()), **state["hparams"]}, asdict(config)  # settings added since: their defaults
    differences = [f"{key} was {stored[key]!r}, now {wanted[key]!r}" for key in wanted
                   if key not in RESUMABLE_CHANGES and stored[key] != wanted[key]]
    if differences:
        raise ValueError(f"cannot resume {checkpoint_path} with other settings than it was trained with: {'; '.join(differences)}")
    if int(state["epoch"]) > config.epochs:
        raise ValueError(f"cannot resume {checkpoint_path}: it has trained {state['epoch']} epochs, more than epochs={config.epochs}")
    return state


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train a base classifier; returns the path of its checkpoint (``out_dir/checkpoint.pt``,
    rewritten atomically after every epoch, with ``out_dir/log.csv``). ``resume`` continues from
    the checkpoint in ``out_dir``. Run under ``torchrun`` for several processes."""
    config.validate()
    env = setup_distributed(config.device)
    if env.device.type == "cpu":
        keep_heap_memory()  # no page-fault tax on large batches (smoothcert.allocator)
    info = dataset_info(config.dataset)
    train_set = load_dataset(config.dataset, "train", config.data_dir)  # a missing or malformed folder stops the run here
    test_set = load_dataset(config.dataset, "test", config.data_dir) if env.main else None
    out_dir = Path(config.out_dir)
    checkpoint_path, log_path = out_dir / "checkpoint.pt", out_dir / "log.csv"
    state = _resumed_state(config, checkpoint_path, resume, env.device)
    if env.main:
        ensure_writable_folder(out_dir)
        remove_stale_temporaries(checkpoint_path)

    torch.manual_seed(derive_seed(config.seed, INIT))
    model = build_model(config.arch, info.num_classes, info.mean, info.std).to(env.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: learning_rate_factor(config, epoch))
    start_epoch, log_rows = 0, []
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"])
        log_rows = _read_log(log_path, start_epoch)

    wrapped = model
    if env.world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    sampler = GlobalBatchSampler(len(train_set), config.batch_size, env.rank, env.world, config.seed)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.workers, pin_memory=env.device.type == "cuda")
    board = _tensorboard(out_dir) if env.main else None

    model.train()
    best_accuracy = max([float(row["train_noisy_acc"]) for row in log_rows], default=0.0)
    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        torch.manual_seed(derive_seed(config.seed, AUGMENT, epoch))
        started = time.perf_counter()
        sums = torch.zeros(len(EPOCH_STATS), device=env.device)
        bar = tqdm(loader, desc=f"{config.method} epoch {epoch + 1}/{config.epochs}", disable=None if progress and env.main else True, leave=False)
        for step, (x, labels) in enumerate(bar):
            x, labels = x.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
            noise, draw = _noise_for_step(config, info.input_shape, epoch, step, env)
            parts = training_step(wrapped, x, labels, noise, draw, config, attack_model=model, epoch=epoch)
            optimizer.zero_grad(set_to_none=True)
            parts.loss.backward()
            optimizer.step()
            sums += _batch_stats(parts)
            if step % 20 == 19:
                running = dict(zip(EPOCH_STATS, (sums / (step + 1)).tolist()))
                if not math.isfinite(running["loss"]):
                    break
                bar.set_postfix(loss=f"{running['loss']:.3f}", noisy_acc=f"{running['train_noisy_acc']:.3f}")
        stats = dict(zip(EPOCH_STATS, (sums / len(loader)).tolist()))
        if not all(math.isfinite(v) for v in stats.values()):
            hint = ("ADRE's regularized risk is unbounded below (eq. 5 with cross-entropy: -lam * l_adre -> -inf as the logits "
                    "grow on examples classified correctly under all noise); bound it with --adre-cap (e.g. 6.9 = -log 0.001) or "
                    "lower lam" if config.method in REGULARIZED else "lower the learning rate (--lr)")
            kept = f"the checkpoint of epoch {epoch} is kept" if epoch else "no checkpoint was written"
            raise TrainingDiverged(f"the loss became non-finite in epoch {epoch + 1} ({config.method}, lam={config.lam}); {kept} "
                                   f"at {checkpoint_path}; {hint}")
        accuracy = stats["train_noisy_acc"]
        best_accuracy = max(best_accuracy, accuracy)
        if accuracy < COLLAPSE_SHARE * best_accuracy:
            warnings.warn(
                f"epoch {epoch + 1}: accuracy under noise collapsed from {best_accuracy:.3f} to {accuracy:.3f}"
                + ("; ADRE's objective is unbounded below, consider --adre-cap 6.9 or a smaller lam" if config.method in REGULARIZED else ""),
                RuntimeWarning, stacklevel=2)
        if config.method in REGULARIZED and config.adre_cap is None and stats["l_adre"] > RUNAWAY_L_ADRE:
            warnings.warn(
                f"epoch {epoch + 1}: mean l_adre = {stats['l_adre']:.1f} is running away (runner-up probability below exp(-{RUNAWAY_L_ADRE:.0f})); "
                "ADRE's objective is unbounded below and the logits are growing without limit. Consider --adre-cap 6.9.",
                RuntimeWarning, stacklevel=2)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if env.main:
            row = dict(epoch=epoch + 1, lr=lr, **stats, test_noisy_acc=_noisy_test_accuracy(model, test_set, config, env.device, epoch),
                       seconds=time.perf_counter() - started)
            log_rows.append(row)
            _write_log(log_path, log_rows)
            save_checkpoint(checkpoint_path, arch=config.arch, dataset=config.dataset, num_classes=info.num_classes,
                            sigma=config.sigma, method=config.method, hparams=asdict(config), state_dict=model.state_dict(),
                            epoch=epoch + 1, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict())
            if board is not None:
                for key in LOG_FIELDS[1:]:
                    board.add_scalar(key, float(row[key]), epoch + 1)
            if progress:
                tqdm.write(f"{config.method} epoch {epoch + 1}/{config.epochs}: loss {stats['loss']:.4f}, l_adre {stats['l_adre']:.3f}, "
                           f"train acc under noise {accuracy:.3f} (all copies right {stats['all_correct']:.3f}, "
                           f"largest logit {stats['max_logit']:.1f}), test acc under noise {row['test_noisy_acc']:.3f} ({row['seconds']:.1f} s)")
    if board is not None:
        board.close()
    teardown(env)
    return checkpoint_path


__all__ = ["TrainConfig", "PRESETS", "preset", "train", "training_step", "learning_rate_factor", "GlobalBatchSampler",
           "TrainingDiverged"]
