"""Training settings: :class:`TrainConfig` (everything a run depends on) and the named recipes
(:data:`PRESETS`) of the paper's datasets and of the embedded digits."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from smoothcert.data import dataset_info
from smoothcert.models import ARCHITECTURES
from smoothcert.training.methods import REGISTRY, method_named
from smoothcert.training.methods.macer import BETA, GAMMA
from smoothcert.rules import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, SHARE, ZERO_OR_ONE, optional
from smoothcert.settings import field_problems, setting

SCHEDULES = ("step", "cosine")
ADRE_CAP = 6.9
"""The per-example bound on ``l_adre`` of the capped ADRE_REG: ``-log 0.001``, a runner-up
probability of 0.001 (the demo's and the studies' capped cells)."""


def run_setting(name: str) -> Any:
    """The declaration of a setting every training run has (``seed``, ``workers``, ``data_dir``,
    ``device``), for :class:`TrainConfig` and the denoiser's
    :class:`~smoothcert.denoising.config.DenoiserConfig`."""
    return {
        "seed": lambda: setting(0, "seed of every random draw of the run (initialization, data order, noise)", NON_NEGATIVE_INT),
        "workers": lambda: setting(0, "data-loading processes (0: load in the training process)", NON_NEGATIVE_INT, place=True),
        "data_dir": lambda: setting(None, "dataset folder (cifar10, imagenet)", place=True),
        "device": lambda: setting(None, "cpu, cuda, cuda:1, ... (default: cuda if available)", place=True),
    }[name]()


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in its checkpoints as ``hparams``. Each field carries
    its help text and rule (:mod:`smoothcert.rules`); ``smoothcert train`` takes one option
    per field but ``dataset`` (set by ``--preset``). The defaults are the one declaration of every
    setting: the ``mnist`` recipe of the embedded digits on a CPU (ours; the paper has no MNIST
    experiment), measured in docs/results.md; :data:`PRESETS` say what another recipe changes."""

    dataset: str = setting("mnist", None)  # set by the preset: no option of its own
    arch: str = setting("small_cnn", "architecture", choices=tuple(ARCHITECTURES))
    method: str = setting("basic", "training method: " + "; ".join(f"{name}, {m.description}" for name, m in REGISTRY.items()),
                          choices=tuple(REGISTRY))
    sigma: float = setting(0.25, "noise level", POSITIVE)
    k: int = setting(1, "noisy copies per example", POSITIVE_INT)
    chunks: int = setting(1, "optimizer steps per loader batch: the batch is split into this many chunks of batch_size / chunks "
                             "examples, each with its k noisy copies and its own SGD step (the authors' layout of SmoothAdv, "
                             "Consistency, SmoothMix and CAT-RS: chunks = k); 1 = one step per batch", POSITIVE_INT)
    lam: float = setting(0.0, "weight of the method's regularizer: ADRE's lambda, MACER's lambda, Consistency's lambda", NON_NEGATIVE)
    lam_delay: int = setting(0, "epochs at the start trained with lambda = 0 (MACER's deferred mode of later reimplementations: "
                                "lambda from the first learning-rate drop on); 0 = off", NON_NEGATIVE_INT)
    single_draw_per: bool = setting(False, "l_per from one random noisy copy (the paper's Table 1 variant)")
    adre_cap: float | None = setting(None, f"bound l_adre per example (e.g. {ADRE_CAP} = -log 0.001); off by default",
                                     optional(POSITIVE))
    gamma: float = setting(GAMMA, "MACER's hinge on the tempered margin xi", POSITIVE)
    beta: float = setting(BETA, "MACER's temperature of the robustness term's soft smoothed classifier", POSITIVE)
    eta: float = setting(0.5, "Consistency's weight of the entropy of the mean prediction; SmoothMix's weight of the mixup term",
                         NON_NEGATIVE)
    mix_steps: int = setting(4, "SmoothMix's attack steps T", POSITIVE_INT)
    mix_step_size: float = setting(0.5, "SmoothMix's attack step size alpha (the authors' CIFAR-10 values: 0.5, 1.0, 2.0 at sigma "
                                        "0.25, 0.5, 1.0)", POSITIVE)
    mix_start: int = setting(0, "SmoothMix's mixup start: 0 the clean input, 1 the one-step adversary", ZERO_OR_ONE)
    mix_warmup: int = setting(10, "epochs over which SmoothMix's mixup weight ramps up, min(1, (epoch + 1) / W) (0: off)",
                              NON_NEGATIVE_INT)
    catrs_votes: str | None = setting(None, "CAT-RS's smoothed predictions of the training examples (a file of smoothcert votes)",
                                      place=True)
    eps: float = setting(0.0, "l2 radius of the training attack (smoothadv, adre_adv; catrs: on the noise)", NON_NEGATIVE)
    attack_steps: int = setting(1, "PGD steps of the training attack", POSITIVE_INT)
    eps_warmup: int = setting(0, "epochs over which the attack radius ramps linearly from 0 to eps (Salman et al.'s --warmup; "
                                 "0 = off)", NON_NEGATIVE_INT)
    epochs: int = setting(15, "training epochs", POSITIVE_INT)
    batch_size: int = setting(100, "global batch size", POSITIVE_INT)
    lr: float = setting(0.05, "learning rate", NON_NEGATIVE)
    momentum: float = setting(0.9, "SGD momentum", SHARE)
    weight_decay: float = setting(5e-4, "SGD weight decay", NON_NEGATIVE)
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy", SHARE)
    schedule: str = setting("step", "learning-rate schedule", choices=SCHEDULES)
    lr_step: int = setting(10, "epochs between learning-rate drops (step)", POSITIVE_INT)
    lr_gamma: float = setting(0.1, "learning-rate drop factor (step)", NON_NEGATIVE)
    warmup_epochs: int = setting(0, "linear warm-up epochs (cosine)", NON_NEGATIVE_INT)
    seed: int = run_setting("seed")
    workers: int = run_setting("workers")
    data_dir: str | None = run_setting("data_dir")
    out_dir: str = setting("runs/train", "where checkpoint.pt and log.csv go", place=True)
    device: str | None = run_setting("device")

    def validate(self) -> "TrainConfig":
        """Refuse settings no run could use, naming each problem and what is expected."""
        info = dataset_info(self.dataset)  # raises on an unknown dataset
        problems = field_problems(self)
        if self.method in REGISTRY:
            problems += method_named(self.method).problems(self)
        chunked = all(POSITIVE_INT.holds(v) for v in (self.chunks, self.batch_size, self.k))
        if chunked and self.chunks > 1 and self.k == 1:
            problems.append(f"chunks={self.chunks} needs k > 1 noisy copies per example (with one copy, a smaller batch_size "
                            f"is the same layout)")
        elif chunked and self.batch_size % self.chunks:
            problems.append(f"chunks={self.chunks} must divide batch_size={self.batch_size} (each chunk holds batch_size / chunks "
                            f"examples; the field's methods default to chunks = k, their authors' layout: set --chunks 1 for one "
                            f"step per batch, or a batch size that k divides)")
        if self.schedule == "cosine" and self.warmup_epochs >= self.epochs:
            problems.append(f"warmup_epochs ({self.warmup_epochs}) must be below epochs ({self.epochs})")
        if info.needs_data_dir and not self.data_dir:
            problems.append(f"dataset {self.dataset!r} is read from a folder: set data_dir (--data-dir)")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # the embedded MNIST digits on a CPU: TrainConfig's declared defaults, unchanged
    "mnist": dict(),
    # the paper's CIFAR-10 recipe (its "Experiments"): ResNet-110, SGD, batch 400, lr 0.1 x0.1
    # every 50 epochs, 150 epochs. The paper is silent on momentum and weight decay: 0.9 (declared) and 1e-4
    # are the defaults of Cohen et al.'s and Salman et al.'s training scripts. The attack radius
    # ramps up over 10 epochs as in Salman et al.'s CIFAR-10 SmoothAdv runs (adversarial methods).
    "cifar10": dict(dataset="cifar10", arch="cifar_resnet110", epochs=150, batch_size=400, lr=0.1, weight_decay=1e-4, lr_step=50,
                    eps_warmup=10, workers=4),
    # the paper's ImageNet recipe (its "Experiments"): ResNet-50, momentum 0.875, weight decay
    # 1/32768, label smoothing 0.1, cosine schedule over 50 epochs after 8 warm-up epochs, batch 256
    "imagenet": dict(dataset="imagenet", arch="resnet50", epochs=50, batch_size=256, lr=0.1, momentum=0.875,
                     weight_decay=1 / 32768, label_smoothing=0.1, schedule="cosine", warmup_epochs=8, workers=8),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe (``mnist``, ``cifar10``, ``imagenet``) with any field overridden; a method
    of the field starts from its authors' hyper-parameters at the nearest of sigma 0.25 / 0.5 / 1.0
    (:meth:`~smoothcert.training.methods.base.Method.defaults`) and their step layout
    (``chunks = k`` where :attr:`~smoothcert.training.methods.base.Method.chunked_by_copies`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown training options {sorted(unknown)}")
    recipe = {**PRESETS[name], **overrides}
    sigma = recipe.get("sigma", TrainConfig.sigma)
    method = REGISTRY.get(recipe.get("method", TrainConfig.method))
    defaults = method.defaults(sigma) if method is not None and isinstance(sigma, (int, float)) and sigma > 0 else {}
    recipe = {**PRESETS[name], **defaults, **overrides}
    if method is not None and method.chunked_by_copies and "chunks" not in overrides:
        recipe["chunks"] = recipe.get("k", TrainConfig.k)
    return TrainConfig(**recipe)
