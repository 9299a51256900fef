"""The settings of a denoiser's training (:class:`DenoiserConfig`), declared once: their defaults,
rules and help, from which ``smoothcert train-denoiser`` generates its options."""

from __future__ import annotations

from dataclasses import dataclass

from smoothcert.rules import AT_LEAST_TWO, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Rule, optional
from smoothcert.settings import field_problems, setting
from smoothcert.training.config import run_setting

OBJECTIVES = ("mse", "stab", "mse+stab")
"""``mse``: the denoising objective; ``stab``: the stability objective through the frozen
classifier; ``mse+stab``: ``mse_epochs`` epochs of the first, then the second with a new Adam at
``finetune_lr`` (Salman et al.'s Stab+MSE fine-tunes an MSE denoiser so, in a new run: their
``--pretrained-denoiser``, here also :attr:`DenoiserConfig.init_denoiser`)."""
A_PATH = Rule(lambda v: isinstance(v, str) and bool(v.strip()), "must name a checkpoint file")


@dataclass
class DenoiserConfig:
    """Everything a denoiser's training depends on; stored in its checkpoint as ``hparams``.
    Optimizer and schedule follow Salman et al.'s ``train_denoiser.py`` (microsoft/denoised-smoothing,
    ``code/train_denoiser.py``, its argument defaults and optimizer set-up): Adam, lr 1e-3, weight
    decay 1e-4, the rate divided by 10 every 30 epochs; their DnCNN has depth 17 and width 64, ours
    a CPU-sized 8 and 32. Their Stab+MSE denoisers are new runs from an MSE denoiser's weights
    (``--pretrained-denoiser``) with a new optimizer; the fine-tuning runs their ``analyze.py``
    names take 20 epochs with Adam or SGD at lr 1e-4 or 1e-5."""

    classifier: str = setting(help="the frozen classifier's checkpoint (smoothcert train's, or a released one); never updated",
                              rule=A_PATH)
    objective: str = setting("mse", "mse: the mean over pixels of (D(x + delta) - x)^2; stab: cross-entropy of the classifier "
                             "on D(x + delta) against its prediction on x; mse+stab: --mse-epochs of mse, then stab",
                             choices=OBJECTIVES)
    mse_epochs: int = setting(0, "with mse+stab, the epochs trained with mse before the stability objective", NON_NEGATIVE_INT)
    finetune_lr: float = setting(1e-4, "with mse+stab, the learning rate of the new Adam that the stability epochs start "
                                 "(Salman et al. fine-tune at 1e-4 or 1e-5)", POSITIVE)
    init_denoiser: str | None = setting(None, "start from this denoiser checkpoint's weights with a new optimizer (Salman et al.'s "
                                        "--pretrained-denoiser; --objective stab from an MSE denoiser is their Stab+MSE)",
                                        optional(A_PATH))
    sigma: float = setting(0.25, "noise level the denoiser removes", POSITIVE)
    depth: int = setting(8, "DnCNN's convolutions (Salman et al.: 17)", AT_LEAST_TWO)
    width: int = setting(32, "DnCNN's channels (Salman et al.: 64)", POSITIVE_INT)
    epochs: int = setting(10, "training epochs", POSITIVE_INT)
    batch_size: int = setting(100, "global batch size", POSITIVE_INT)
    lr: float = setting(1e-3, "Adam's learning rate", POSITIVE)
    weight_decay: float = setting(1e-4, "Adam's weight decay", NON_NEGATIVE)
    lr_step: int = setting(30, "epochs between divisions of the learning rate by 10", POSITIVE_INT)
    seed: int = run_setting("seed")
    workers: int = run_setting("workers")
    data_dir: str | None = run_setting("data_dir")
    out_dir: str = setting("runs/denoiser", "where checkpoint.pt and log.csv go", place=True)
    device: str | None = run_setting("device")

    def validate(self) -> "DenoiserConfig":
        """Refuse settings no run could use, naming each problem and what is expected."""
        problems = field_problems(self)
        if self.objective == "mse+stab" and POSITIVE_INT.holds(self.epochs) and not 0 < self.mse_epochs < self.epochs:
            problems.append(f"objective 'mse+stab' needs 0 < mse_epochs < epochs, got mse_epochs={self.mse_epochs}, epochs={self.epochs}")
        if self.objective != "mse+stab" and self.mse_epochs:
            problems.append(f"mse_epochs is for objective 'mse+stab', got objective {self.objective!r} with mse_epochs={self.mse_epochs}")
        if problems:
            raise ValueError("invalid denoiser configuration: " + "; ".join(problems))
        return self

    def starts_finetuning(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (from 0) is mse+stab's first stability epoch, which starts a new Adam."""
        return self.objective == "mse+stab" and epoch == self.mse_epochs

    def objective_of(self, epoch: int) -> str:
        """The objective of epoch ``epoch`` (from 0): ``mse`` or ``stab``."""
        if self.objective == "mse+stab":
            return "mse" if epoch < self.mse_epochs else "stab"
        return self.objective
