"""What several processes and CUDA need, checked on the CPU: decisions agreed by every process,
commands that would not split their work refused under torchrun, the GPU's noise fingerprint
binding on resume, and bfloat16 and TF32 only where asked for and available (stubbed devices)."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from smoothcert.cli import main
from smoothcert.jobs.resume import writing
from smoothcert.runtime import distributed
from smoothcert.runtime.seeding import noise_fingerprint
from smoothcert.smoothing import fast


def _agree(rank: int, world: int, port: int, answers) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        answers[rank] = distributed.agreed_any(rank == 1, distributed.Distributed(rank=rank, world=world))
    finally:
        dist.destroy_process_group()


def test_a_flag_raised_on_one_process_is_seen_by_every_process():
    """The non-finite stop: process 1 alone meets it, both stop (all-reduced, not per rank)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers = mp.Manager().dict()
    mp.spawn(_agree, args=(2, port, answers), nprocs=2, join=True)
    assert dict(answers) == {0: True, 1: True}
    assert distributed.agreed_any(False, distributed.Distributed()) is False


@pytest.mark.parametrize("command", ["predict", "votes"])
def test_commands_that_do_not_split_are_refused_under_torchrun(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([command, "--checkpoint", str(tmp_path / "x.pt"), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "--shard K/N" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()


def test_a_group_without_its_local_rank_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(ValueError, match="RANK or LOCAL_RANK is not set"):
        with distributed.process_group("cpu"):
            pass


def _gpu(monkeypatch, name="NVIDIA H100 80GB HBM3", sms=132, bf16=True):
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(name=name, multi_processor_count=sms, max_threads_per_multi_processor=2048))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16 or including_emulation)


def test_the_gpus_noise_fingerprint_binds_a_resumed_file(monkeypatch, tmp_path):
    assert noise_fingerprint("cpu") is None  # CPU records are as before
    _gpu(monkeypatch)
    h100 = noise_fingerprint("cuda:0")
    assert h100 == "NVIDIA H100 80GB HBM3, 132 SMs x 2048 threads"
    path = tmp_path / "c.tsv"
    with writing([path], {"seed": 0, "device_type": "cuda", "noise": h100}, resume=False):
        path.write_text("idx\tlabel\n0\t3\n")
    _gpu(monkeypatch, name="NVIDIA A100-SXM4-40GB", sms=108)
    with pytest.raises(ValueError, match="noise was 'NVIDIA H100.*now 'NVIDIA A100"):
        with writing([path], {"seed": 0, "device_type": "cuda", "noise": noise_fingerprint("cuda:0")}, resume=True):
            pass
    assert json.loads((tmp_path / "c.tsv.json").read_text())["noise"] == h100  # the refusal wrote nothing


def test_bfloat16_only_where_the_gpu_has_it(monkeypatch):
    cuda = torch.device("cuda")
    _gpu(monkeypatch, name="Tesla V100-SXM2-16GB", bf16=False)
    assert not fast.native_bf16(cuda) and not fast.FastOptions.all_for(cuda).bf16
    with pytest.raises(ValueError, match="V100.*has no bfloat16 units"):
        fast.check_bf16(fast.FastOptions(bf16=True), cuda)
    _gpu(monkeypatch, bf16=True)
    assert fast.native_bf16(cuda) and fast.FastOptions.all_for(cuda).bf16
    fast.check_bf16(fast.FastOptions(bf16=True), cuda)


def test_tf32_is_off_unless_asked_for_and_recorded_when_on():
    assert fast.FastOptions.all_for(torch.device("cuda")).tf32 and not fast.FastOptions.all_for(torch.device("cpu")).tf32
    assert "tf32" not in fast.describe(fast.FastOptions())  # records made before the option read the same
    assert fast.describe(fast.FastOptions(tf32=True))["tf32"] is True
    assert fast.tf32_settings(fast.FastOptions()) == {"cudnn": False, "matmul": False}


def test_a_training_resumed_on_another_noise_source_is_refused(tmp_path, monkeypatch):
    """A checkpoint records where its training noise came from; resuming it where the generator
    draws other noise (CPU to CUDA, or another GPU model) is refused."""
    from smoothcert.models.checkpoint import load_checkpoint
    from smoothcert.training import loop
    from smoothcert.training.config import preset

    config = preset("mnist", sigma=0.5, epochs=1, out_dir=str(tmp_path / "run"), device="cpu")
    path = loop.train(config, progress=False)
    assert load_checkpoint(path)["noise"] == "cpu"
    longer = preset("mnist", sigma=0.5, epochs=2, out_dir=str(tmp_path / "run"), device="cpu")
    assert loop.resumed_state(longer, path, True, torch.device("cpu"))["epoch"] == 1
    monkeypatch.setattr(loop, "noise_source", lambda device: "cuda (NVIDIA H100 80GB HBM3, 132 SMs x 2048 threads)")
    with pytest.raises(ValueError, match="its training noise was drawn on cpu, this run would draw it on cuda"):
        loop.resumed_state(longer, path, True, torch.device("cpu"))
