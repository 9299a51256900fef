"""Long runs survive being killed: a certification or a training run killed with SIGKILL and
resumed ends where an uninterrupted run ends; a resume with other settings is refused; a save
cut off midway or a diverging loss leaves the last good checkpoint."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import smoothcert.training.loop
from smoothcert.models.checkpoint import load_checkpoint, save_checkpoint
from smoothcert.cli import main
from smoothcert.runtime.seeding import CERTIFY_STREAMS, input_generator, input_seed
from smoothcert.training.config import preset
from smoothcert.training.diagnostics import TrainingDiverged
from smoothcert.training.loop import train


def without_time(path: Path) -> list[list[str]]:
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    column = lines[0].index("time")
    return [cells[:column] + cells[column + 1:] for cells in lines]


def rows_in(path: Path) -> int:
    return path.read_text().count("\n") - 1 if path.is_file() else 0


def kill_when(process: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before it was killed: {process.stderr.read()}"
        assert time.monotonic() < deadline, "the run wrote too few rows in time"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_certification_killed_mid_run_resumes_to_the_uninterrupted_file(checkpoint, tmp_path):
    arguments = ["certify", "--checkpoint", str(checkpoint), "--n", "4000", "--batch", "400", "--skip", "7", "--max", "40",
                 "--method", "both", "--quiet"]
    whole, part = tmp_path / "whole.tsv", tmp_path / "part.tsv"
    assert main([*arguments, "--outfile", str(whole)]) == 0
    process = subprocess.Popen([sys.executable, "-m", "smoothcert", *arguments, "--outfile", str(part)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(process, lambda: rows_in(tmp_path / "part.certify.tsv") >= 8)
    killed_at = rows_in(tmp_path / "part.certify.tsv")
    assert 8 <= killed_at < 40, "the kill must land mid-run"
    assert main([*arguments, "--outfile", str(part), "--resume"]) == 0
    for name in ("certify", "tcertify"):
        resumed, uninterrupted = without_time(tmp_path / f"part.{name}.tsv"), without_time(tmp_path / f"whole.{name}.tsv")
        assert resumed == uninterrupted
        indices = [row[0] for row in resumed[1:]]
        assert len(indices) == len(set(indices)) == 40  # no index written twice


def test_resuming_with_other_settings_is_refused_and_the_file_kept(checkpoint, tmp_path, capsys):
    outfile = tmp_path / "cert.tsv"
    base = ["certify", "--checkpoint", str(checkpoint), "--outfile", str(outfile), "--n", "200", "--batch", "200", "--quiet"]
    assert main([*base, "--max", "2"]) == 0
    before = outfile.read_text()
    recorded = json.loads((tmp_path / "cert.tsv.json").read_text())
    assert recorded["checkpoint_sha256"] and recorded["dataset"] == "mnist" and recorded["split"] == "test"
    assert {"n0", "n", "alpha", "method", "seed", "skip", "sigma", "device_type", "versions"} <= set(recorded)

    assert main([*base, "--max", "3"]) == 2  # rows exist: --resume must be asked for
    assert "already holds results; pass --resume" in capsys.readouterr().err
    assert main([*base, "--max", "3", "--resume", "--alpha", "0.01"]) == 2
    assert "alpha was 0.001, now 0.01" in capsys.readouterr().err
    assert main([*base, "--max", "3", "--resume", "--seed", "5"]) == 2
    assert "seed was 0, now 5" in capsys.readouterr().err
    assert outfile.read_text() == before

    other = tmp_path / "other.pt"
    other.write_bytes(checkpoint.read_bytes())  # the same bytes elsewhere: the digest matches
    assert main(["certify", "--checkpoint", str(other), *base[3:], "--max", "3", "--resume", "--batch", "100"]) == 0
    assert len(outfile.read_text().splitlines()) == 4  # a moved checkpoint and another batch size resume
    other.write_bytes(checkpoint.read_bytes() + b"\0")
    assert main(["certify", "--checkpoint", str(other), *base[3:], "--max", "4", "--resume"]) == 2
    assert "checkpoint_sha256 was" in capsys.readouterr().err

    record = json.loads((tmp_path / "cert.tsv.json").read_text())
    assert record["noise_streams"] == CERTIFY_STREAMS == 2
    del record["noise_streams"]  # a file started before each input had its own stream
    (tmp_path / "cert.tsv.json").write_text(json.dumps(record))
    assert main([*base, "--max", "4", "--resume"]) == 2
    assert "noise_streams was None, now 2" in capsys.readouterr().err

    (tmp_path / "cert.tsv.json").unlink()
    assert main([*base, "--max", "4", "--resume"]) == 2
    assert "settings file" in capsys.readouterr().err


def test_every_input_of_a_run_has_its_own_noise_stream():
    """torch's CPU generator keeps only the low 32 bits of a seed (1 and 1 + 2^32 draw the same
    noise); each input's seed is 32 bits and one-to-one in idx, so the inputs of a run never share a
    stream."""
    assert torch.equal(torch.randn(3, generator=torch.Generator().manual_seed(1)),
                       torch.randn(3, generator=torch.Generator().manual_seed(1 + 2**32)))
    seeds = [input_seed(7, idx) for idx in range(200_000)]
    assert len(set(seeds)) == len(seeds) and max(seeds) < 2**32
    assert input_seed(7, 0) != input_seed(8, 0)
    first = [torch.randn(4, generator=input_generator("cpu", 7, idx)) for idx in range(1000)]
    assert len({tuple(t.tolist()) for t in first}) == 1000


def train_arguments(out_dir: Path, *extra: str) -> list[str]:
    return ["train", "--epochs", "3", "--sigma", "0.5", "--batch-size", "200", "--out-dir", str(out_dir), "--quiet", *extra]


def test_training_killed_mid_run_resumes_to_the_uninterrupted_weights(tmp_path):
    assert main(train_arguments(tmp_path / "whole")) == 0
    process = subprocess.Popen([sys.executable, "-m", "smoothcert", *train_arguments(tmp_path / "part")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(process, lambda: (tmp_path / "part" / "checkpoint.pt").is_file())  # killed in the second epoch
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["epoch"] in (1, 2)
    (tmp_path / "part" / ".checkpoint.pt.x1y2.tmp").write_bytes(b"PK\x03\x04 a save the kill cut off")
    assert main(train_arguments(tmp_path / "part", "--resume")) == 0
    whole, part = (load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("whole", "part"))
    assert part["epoch"] == whole["epoch"] == 3
    assert all(torch.equal(whole["state_dict"][key], part["state_dict"][key]) for key in whole["state_dict"])
    logged = lambda name: [row.split(",")[:-1] for row in (tmp_path / name / "log.csv").read_text().splitlines()]  # but seconds
    assert logged("part") == logged("whole")
    assert not list((tmp_path / "part").glob("*.tmp"))  # what a kill mid-save leaves is cleared


def test_augmented_training_resumes_to_the_same_weights(tmp_path, cifar_dir):
    config = lambda out, epochs: preset("cifar10", arch="cifar_resnet20", data_dir=str(cifar_dir), epochs=epochs, batch_size=10,
                                        workers=0, sigma=0.25, out_dir=str(tmp_path / out))
    straight = load_checkpoint(train(config("straight", 2), progress=False))
    train(config("resumed", 1), progress=False)
    resumed = load_checkpoint(train(config("resumed", 2), resume=True, progress=False))
    assert all(torch.equal(straight["state_dict"][key], resumed["state_dict"][key]) for key in straight["state_dict"])


def test_a_save_cut_off_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", num_classes=10,
                           hparams=dict(arch="small_cnn", dataset="mnist", sigma=0.5, method="basic"), state_dict={"w": torch.ones(3)}, epoch=1)
    before = path.read_bytes()

    def cut_off(obj, stream):
        stream.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as a kill would stop it, mid-write

    monkeypatch.setattr(torch, "save", cut_off)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, num_classes=10, hparams=dict(arch="small_cnn", dataset="mnist", sigma=0.5, method="basic"),
                        state_dict={"w": torch.zeros(3)}, epoch=2)
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # the temporary file is gone


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(train_arguments(out, "--epochs", "1")) == 0
    before = (out / "checkpoint.pt").read_bytes()
    real = smoothcert.training.methods.basic.regularized_risk

    def diverging(*args, **kwargs):
        parts = real(*args, **kwargs)
        return dataclasses.replace(parts, loss=parts.loss * float("nan"))

    monkeypatch.setattr(smoothcert.training.methods.basic, "regularized_risk", diverging)
    with pytest.raises(TrainingDiverged, match="non-finite in epoch 2 .*the checkpoint of epoch 1 is kept"):
        train(preset("mnist", epochs=2, sigma=0.5, batch_size=200, out_dir=str(out)), resume=True, progress=False)
    assert main(train_arguments(out, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lower the learning rate" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_rows_left_in_shards_by_killed_processes_join_the_resumed_file(checkpoint, tmp_path):
    arguments = ["certify", "--checkpoint", str(checkpoint), "--n", "300", "--batch", "300", "--skip", "3", "--max", "9", "--quiet"]
    assert main([*arguments, "--outfile", str(tmp_path / "whole.tsv")]) == 0
    lines = (tmp_path / "whole.tsv").read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    # two processes, killed: process 0 finished rows 0 and 2 and was cut off in row 4; process 1 finished row 1
    (tmp_path / "part.tsv").write_text(header)
    (tmp_path / "part.tsv.rank0of2").write_text(header + rows[0] + rows[2] + rows[4][:7])
    (tmp_path / "part.tsv.rank1of2").write_text(header + rows[1])
    (tmp_path / "part.tsv.json").write_text((tmp_path / "whole.tsv.json").read_text())
    assert main([*arguments, "--outfile", str(tmp_path / "part.tsv")]) == 2  # shards are results: --resume is needed
    assert main([*arguments, "--outfile", str(tmp_path / "part.tsv"), "--resume"]) == 0
    assert without_time(tmp_path / "part.tsv") == without_time(tmp_path / "whole.tsv")
    assert not list(tmp_path.glob("*.rank*"))
