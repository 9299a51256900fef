"""Opt-in ways to run the base classifier faster at certification time.

Each of them can change the classifier's floating-point results, and so, rarely, a prediction:
``fold_bn`` folds every BatchNorm into the convolution before it (torch.fx), ``channels_last``
stores activations channel-last, ``compile`` runs ``torch.compile``, ``bf16`` runs under bfloat16
autocast (on CUDA, or on a CPU; it pays on CPUs with bfloat16 units, AVX512-BF16 or AMX, and is
emulated, slower, on others). All are off by default; the options used are stored with the results
(:func:`describe`), since a certificate is about the classifier that was actually evaluated.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse


@dataclass(frozen=True)
class FastOptions:
    fold_bn: bool = False
    channels_last: bool = False
    compile: bool = False
    bf16: bool = False
    tf32: bool = False

    @classmethod
    def all_for(cls, device: torch.device) -> "FastOptions":
        """What ``--fast`` turns on: everything, bfloat16 only where the device has bfloat16 units,
        TF32 on CUDA."""
        return cls(fold_bn=True, channels_last=True, compile=True, bf16=native_bf16(device), tf32=device.type == "cuda")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a GPU with bfloat16 units (Ampere and
    newer; a T4 or V100 only emulates it), or a CPU whose oneDNN build reports bfloat16 support
    (AVX512-BF16 or AMX)."""
    if device.type == "cuda":  # the current device: each process's own under torchrun
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class _ChannelsLast(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x)


class _Bfloat16(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return self.model(x).float()


def check_bf16(options: FastOptions, device: torch.device) -> None:
    """Refuse bf16 on a GPU without bfloat16 units (where it is emulated); warn on such a CPU."""
    if options.bf16 and device.type == "cuda" and not native_bf16(device):
        raise ValueError(f"bf16 asked for, but {torch.cuda.get_device_name(device)} has no bfloat16 units (it would emulate "
                         "them); leave out --bf16")
    if options.bf16 and not native_bf16(device):
        warnings.warn("this CPU has no bfloat16 units (AVX512-BF16 or AMX): bf16 autocast is emulated and likely slower",
                      RuntimeWarning, stacklevel=3)


def tf32_settings(options: FastOptions) -> dict[str, bool]:
    """Whether CUDA may compute convolutions (cuDNN) and matrix products in TF32: only when asked
    for (cuDNN's default is on for Ampere and newer, which would make predictions depend on the
    batch and the GPU)."""
    return {"cudnn": options.tf32, "matmul": options.tf32}


def apply_fast_options(model: nn.Module, options: FastOptions) -> nn.Module:
    """A module computing ``model``'s logits with ``options``; ``model`` must be in eval mode and
    stays unchanged."""
    if model.training:
        raise ValueError("fast options are for inference: put the model in eval mode first")
    device = next(model.parameters()).device
    if options.bf16 and device.type not in ("cuda", "cpu"):
        raise ValueError(f"bf16 autocast is offered on CUDA and CPU devices, not on {device.type}")
    check_bf16(options, device)
    if device.type == "cuda":
        settings = tf32_settings(options)
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = settings["cudnn"], settings["matmul"]
    fast = fuse(model) if options.fold_bn else model
    if options.channels_last:
        fast = _ChannelsLast(fast)
    if options.bf16:
        fast = _Bfloat16(fast)
    if options.compile:
        fast = torch.compile(fast)
    return fast.eval()


def describe(options: FastOptions) -> dict[str, bool]:
    """The options as a results file records them (``tf32`` only when on, as records before it read)."""
    described = asdict(options)
    if not options.tf32:
        del described["tf32"]
    return described
