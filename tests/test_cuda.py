"""CUDA checks, run by ``benchmarks/gpu_check.sh`` on a machine with a GPU (skipped elsewhere):
certification on the GPU is deterministic (TF32 off, fixed noise blocks) and records what makes
its noise reproducible; the CPU suite cannot see these."""

import json

import pytest
import torch

from smoothcert.cli import main
from smoothcert.storage.tsv import read_results
from smoothcert.runtime.seeding import noise_fingerprint

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda") / "run"
    assert main(["train", "--epochs", "1", "--sigma", "0.5", "--out-dir", str(out), "--quiet", "--device", "cuda"]) == 0
    return out / "checkpoint.pt"


def test_gpu_certification_does_not_depend_on_the_batch_and_records_the_noise(checkpoint, tmp_path):
    base = ["certify", "--checkpoint", str(checkpoint), "--n", "20000", "--skip", "100", "--max", "10", "--quiet", "--device", "cuda"]
    assert main([*base, "--batch", "1000", "--outfile", str(tmp_path / "a.tsv")]) == 0
    assert main([*base, "--batch", "4000", "--outfile", str(tmp_path / "b.tsv")]) == 0
    strip = lambda path: [{k: v for k, v in r.items() if k != "time"} for r in read_results(path)]
    assert strip(tmp_path / "a.tsv") == strip(tmp_path / "b.tsv")
    record = json.loads((tmp_path / "a.tsv.json").read_text())
    assert record["noise"] == noise_fingerprint("cuda") and "tf32" not in record["fast"]
    assert not torch.backends.cudnn.allow_tf32


def test_gpu_training_resumes_to_the_same_weights(tmp_path):
    common = ["train", "--sigma", "0.5", "--quiet", "--device", "cuda", "--k", "2", "--method", "adre", "--lam", "0.1", "--adre-cap", "6.9"]
    assert main([*common, "--epochs", "2", "--out-dir", str(tmp_path / "straight")]) == 0
    assert main([*common, "--epochs", "1", "--out-dir", str(tmp_path / "resumed")]) == 0
    assert main([*common, "--epochs", "2", "--out-dir", str(tmp_path / "resumed"), "--resume"]) == 0
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["state_dict"]
    for key in a:  # cuDNN's convolution backward is not bitwise deterministic: close, not equal
        assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-5), key
