"""Checkpoints load safely, and those in the layout of Cohen et al.'s and Salman et al.'s
released models certify. The layout is rebuilt here by hand from its description, and the
CIFAR ResNet's output is checked against a forward pass written with torch.nn.functional."""

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet50

from smoothcert.models.checkpoint import load_checkpoint, load_classifier
from smoothcert.cli import main
from smoothcert.storage.tsv import read_results

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def batch_norm_entries(prefix: str, channels: int, generator: torch.Generator) -> dict:
    return {f"{prefix}.weight": 1 + 0.1 * torch.randn(channels, generator=generator),
            f"{prefix}.bias": 0.1 * torch.randn(channels, generator=generator),
            f"{prefix}.running_mean": 0.1 * torch.randn(channels, generator=generator),
            f"{prefix}.running_var": 1 + torch.rand(channels, generator=generator),
            f"{prefix}.num_batches_tracked": torch.tensor(1000)}


def released_cifar_state(depth: int, classes: int = 10, seed: int = 0) -> dict:
    """The state dict of Sequential(normalize, cifar_resnet<depth>) as released: keys from ``1.``."""
    g = torch.Generator().manual_seed(seed)
    conv = lambda out, inp, k: torch.randn(out, inp, k, k, generator=g) * (2 / (k * k * out)) ** 0.5
    state = {"1.conv1.weight": conv(16, 3, 3), **batch_norm_entries("1.bn1", 16, g)}
    inp = 16
    for stage, channels in enumerate((16, 32, 64), start=1):
        for i in range((depth - 2) // 6):
            block = f"1.layer{stage}.{i}"
            state[f"{block}.conv1.weight"] = conv(channels, inp, 3)
            state.update(batch_norm_entries(f"{block}.bn1", channels, g))
            state[f"{block}.conv2.weight"] = conv(channels, channels, 3)
            state.update(batch_norm_entries(f"{block}.bn2", channels, g))
            if inp != channels:
                state[f"{block}.downsample.0.weight"] = conv(channels, inp, 1)
                state.update(batch_norm_entries(f"{block}.downsample.1", channels, g))
            inp = channels
    state["1.fc.weight"] = 0.1 * torch.randn(classes, 64, generator=g)
    state["1.fc.bias"] = 0.1 * torch.randn(classes, generator=g)
    return state


def reference_cifar_forward(state: dict, x: torch.Tensor, depth: int) -> torch.Tensor:
    """He et al.'s CIFAR ResNet on the released weights, with the released normalization."""
    bn = lambda h, p: F.batch_norm(h, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"], state[f"{p}.bias"])
    h = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    h = F.relu(bn(F.conv2d(h, state["1.conv1.weight"], padding=1), "1.bn1"))
    for stage in (1, 2, 3):
        for i in range((depth - 2) // 6):
            p = f"1.layer{stage}.{i}"
            stride = 2 if stage > 1 and i == 0 else 1
            out = F.relu(bn(F.conv2d(h, state[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            shortcut = bn(F.conv2d(h, state[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1") if f"{p}.downsample.0.weight" in state else h
            h = F.relu(out + shortcut)
    return F.linear(F.avg_pool2d(h, 8).flatten(1), state["1.fc.weight"], state["1.fc.bias"])


def save_released(path: Path, arch: str, state: dict, legacy: bool = False) -> Path:
    """``legacy``: torch's format before 1.6 (not a zip), in which the 2019 models were saved."""
    torch.save({"epoch": 90, "arch": arch, "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "momentum": 0.9, "params": [0, 1]}]}}, path,
               _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("depth,legacy", [(20, False), (110, False), (20, True)])
def test_released_cifar_resnet_computes_what_its_weights_define(tmp_path, depth, legacy):
    state = released_cifar_state(depth)
    path = save_released(tmp_path / "checkpoint.pth.tar", f"cifar_resnet{depth}", state, legacy=legacy)
    assert (path.read_bytes()[:2] == b"PK") != legacy
    model, entries = load_classifier(path, sigma=0.25)
    assert (entries["dataset"], entries["num_classes"], entries["sigma"]) == ("cifar10", 10, 0.25)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_cifar_forward(state, x, depth), rtol=1e-4, atol=1e-4)


def test_released_imagenet_resnet50_in_data_parallel_layout_computes_and_certifies(tmp_path, imagenet_dir):
    reference = resnet50(weights=None).eval()
    state = {f"1.module.{key}": value for key, value in reference.state_dict().items()}
    checkpoint = save_released(tmp_path / "r50.pth.tar", "resnet50", state)
    model, entries = load_classifier(checkpoint, sigma=0.5)
    assert (entries["dataset"], entries["num_classes"]) == ("imagenet", 1000)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        normalized = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        torch.testing.assert_close(model(x), reference(normalized), rtol=1e-4, atol=1e-4)
    outfile = tmp_path / "cert.tsv"
    assert main(["certify", "--checkpoint", str(checkpoint), "--sigma", "0.5", "--data-dir", str(imagenet_dir), "--outfile", str(outfile),
                 "--n0", "10", "--n", "20", "--batch", "30", "--skip", "3", "--quiet"]) == 0
    assert [r["idx"] for r in read_results(outfile)] == [0, 3]


def test_a_released_checkpoint_certifies_from_the_command_line(tmp_path, cifar_dir, capsys):
    checkpoint = save_released(tmp_path / "noise_0.25.pth.tar", "cifar_resnet20", released_cifar_state(20))
    outfile = tmp_path / "cert.tsv"
    base = ["certify", "--checkpoint", str(checkpoint), "--data-dir", str(cifar_dir), "--outfile", str(outfile),
            "--n0", "20", "--n", "100", "--batch", "120", "--quiet"]
    assert main(base) == 2
    assert "do not record sigma" in capsys.readouterr().err and not outfile.exists()
    assert main([*base, "--sigma", "0.25"]) == 0
    rows = read_results(outfile)
    assert [r["idx"] for r in rows] == list(range(6)) and all(r["radius"] >= 0 for r in rows)


def test_checkpoints_that_do_not_fit_are_refused_in_one_line(tmp_path):
    wrong_classes = save_released(tmp_path / "seven.pt", "cifar_resnet20", released_cifar_state(20, classes=7))
    with pytest.raises(ValueError, match="over 7 classes, but cifar10 has 10"):
        load_classifier(wrong_classes, sigma=0.25)
    wrong_arch = save_released(tmp_path / "arch.pt", "cifar_resnet110", released_cifar_state(20))
    with pytest.raises(ValueError, match=r"does not hold a cifar_resnet110 with 10 classes: missing: .*\(\d+\)") as caught:
        load_classifier(wrong_arch, sigma=0.25)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="arch 'vgg16'"):
        load_classifier(save_released(tmp_path / "vgg.pt", "vgg16", released_cifar_state(20)), sigma=0.25)


class RunsCode:
    """Pickles to a call of ``exec``: loading it with full unpickling would write ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "the-code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"arch": "cifar_resnet20", "state_dict": released_cifar_state(20), "payload": RunsCode(marker)}, path)
    for load in (lambda: load_classifier(path, sigma=0.25), lambda: load_checkpoint(path)):
        with pytest.raises(ValueError, match="not a readable checkpoint"):
            load()
        assert not marker.exists()
    assert main(["certify", "--checkpoint", str(path), "--sigma", "0.25", "--outfile", str(tmp_path / "c.tsv")]) == 2
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: full unpickling runs it
    assert marker.read_text() == "ran"


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for source in Path(__file__).parents[1].joinpath("src", "smoothcert").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                keywords = {k.arg: k.value for k in node.keywords}
                calls.append((source.name, isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True))
    assert calls and all(safe for _, safe in calls), calls
