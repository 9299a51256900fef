"""Long runs survive being killed: a certification killed with SIGKILL and resumed writes the
file an uninterrupted run writes, and a resume with other settings is refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smoothcert.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", "--epochs", "1", "--sigma", "0.5", "--out-dir", str(out), "--quiet"]) == 0
    return out / "checkpoint.pt"


def without_time(path: Path) -> list[list[str]]:
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    column = lines[0].index("time")
    return [cells[:column] + cells[column + 1:] for cells in lines]


def rows_in(path: Path) -> int:
    return path.read_text().count("\n") - 1 if path.is_file() else 0


def kill_when(process: subprocess.Popen, path: Path, rows: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while rows_in(path) < rows:
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
    kill_when(process, tmp_path / "part.certify.tsv", rows=8)
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

    (tmp_path / "cert.tsv.json").unlink()
    assert main([*base, "--max", "4", "--resume"]) == 2
    assert "settings file" in capsys.readouterr().err
