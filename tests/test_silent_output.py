"""No silent wrong output: the seven causes of wrong results a hostile probe found, each refused
in one line with every existing file left as it was (issue 27).

1. an output that is a FIFO or a device is never replaced by a regular file;
2. memory is set by the batch, whatever n is, and a failed start blocks no rerun;
3. a base classifier with non-finite logits (or a checkpoint with non-finite weights) certifies
   nothing;
4. ``analyze`` checks the values of every row;
5. ``analyze`` refuses a repeated ``idx``;
6. one writer per output: a second run on it is refused, naming the first;
7. a corrupt votes file trains nothing.
"""

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from smoothcert.analysis.report import analyze_files
from smoothcert.data import load_dataset
from smoothcert.storage.atomic import write_text_atomic
from smoothcert.storage.tsv import read_results
from smoothcert.models import build_model
from smoothcert.models.checkpoint import load_classifier, save_checkpoint
from smoothcert.jobs.evaluate import certify_dataset
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.smoothing.counting import count_phases
from smoothcert.training.soft_labels import read_votes

HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"


def digits_model(seed=0):
    torch.manual_seed(seed)
    return build_model("small_cnn", 10, (0.1307,), (0.3081,)).eval()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1 ---------------------------------------------------------------------------------------------

def test_an_output_that_is_a_fifo_is_refused_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "results.tsv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        write_text_atomic(fifo, "text\n")
    smoothed = SmoothedClassifier(digits_model(), 10, 0.5)
    with pytest.raises(ValueError, match="is not a regular file"):
        certify_dataset(smoothed, load_dataset("mnist", "test"), fifo, CertifySettings(n0=10, n=20, max_count=1), progress=False)
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["results.tsv"]  # no settings record beside it


def test_a_link_to_a_device_is_refused_and_the_device_is_untouched(tmp_path):
    link = tmp_path / "null.tsv"
    link.symlink_to("/dev/null")
    with pytest.raises(ValueError, match="/dev/null|is not a regular file"):
        write_text_atomic(link, "text\n")
    assert link.is_symlink() and Path("/dev/null").is_char_device()


# 2 ---------------------------------------------------------------------------------------------

class Stop(Exception):
    pass


class Raising(torch.nn.Module):
    """A classifier that stops the run at its first forward pass."""

    def forward(self, x):
        raise Stop


def test_counting_plans_lazily_so_that_memory_does_not_grow_with_n():
    """The first forward pass comes before any per-block plan is built: with n = 10^8 (a million
    blocks) the allocations before it stay far below what a list of the blocks would take."""
    x = torch.zeros(1, 1, 4, 4)
    tracemalloc.start()
    try:
        with pytest.raises(Stop):
            count_phases(Raising(), 10, 0.5, x, (100, 10**8), 200, [torch.Generator().manual_seed(0)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_a_sample_count_beyond_exact_counting_is_refused_in_one_line():
    with pytest.raises(ValueError, match="n must be a positive integer of at most 2\\*\\*53"):
        CertifySettings(n=10**30).validate()


def test_a_start_that_failed_leaves_nothing_that_blocks_the_rerun(tmp_path):
    """A run that fails after writing its header (here: at its first forward pass) leaves a file
    that a rerun without --resume may start over."""
    out = tmp_path / "cert.tsv"
    failing = SmoothedClassifier(Raising(), 10, 0.5)
    with pytest.raises(Stop):
        certify_dataset(failing, load_dataset("mnist", "test"), out, CertifySettings(n0=10, n=20, max_count=1), progress=False)
    certify_dataset(SmoothedClassifier(digits_model(), 10, 0.5), load_dataset("mnist", "test"), out,
                    CertifySettings(n0=10, n=20, max_count=1), progress=False)
    assert len(read_results(out)) == 1


# 3 ---------------------------------------------------------------------------------------------

class NotFinite(torch.nn.Module):
    """A classifier whose logits are NaN (or inf) on every input."""

    def __init__(self, value=float("nan")):
        super().__init__()
        self.value = value

    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = self.value
        return logits


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_logits_certify_nothing(value):
    smoothed = SmoothedClassifier(NotFinite(value), 10, 0.5)
    with pytest.raises(ValueError, match="non-finite logits"):
        smoothed.certify(torch.zeros(1, 28, 28), n0=10, n=20, alpha=0.001, batch_size=20)
    with pytest.raises(ValueError, match="non-finite logits"):
        smoothed.predict(torch.zeros(1, 28, 28), n=20, alpha=0.001, batch_size=20)


class NotFiniteAfter(torch.nn.Module):
    """NaN logits on the rows of a batch from ``first`` on (the second input's copies, when two
    inputs of 30 copies share a pass)."""

    def __init__(self, first):
        super().__init__()
        self.first = first

    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[self.first:, 3] = float("nan")
        return logits


def test_non_finite_logits_name_the_example_in_a_dataset_run(tmp_path):
    smoothed = SmoothedClassifier(NotFiniteAfter(30), 10, 0.5)
    with pytest.raises(ValueError, match="example idx 3 of the dataset"):
        certify_dataset(smoothed, load_dataset("mnist", "test"), tmp_path / "c.tsv", CertifySettings(n0=10, n=20, skip=3, max_count=2),
                        progress=False)


def test_a_checkpoint_with_a_non_finite_weight_is_refused(tmp_path):
    model = digits_model()
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name][0].fill_(float("nan"))
    path = save_checkpoint(tmp_path / "nan.pt", num_classes=10,
                           hparams=dict(arch="small_cnn", dataset="mnist", sigma=0.5, method="basic"), state_dict=state, epoch=1)
    with pytest.raises(ValueError, match=f"non-finite.*{name}"):
        load_classifier(path)


# 4, 5 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("row,expected", [
    ("0\t1\t1\tnan\t1\t0.1", "radius must be a finite non-negative number"),
    ("0\t1\t1\tinf\t1\t0.1", "radius must be a finite non-negative number"),
    ("0\t1\t1\t" + "9" * 400 + "\t1\t0.1", "radius must be a finite non-negative number"),
    ("0\t1\t1\t-0.5\t1\t0.1", "radius must be a finite non-negative number"),
    ("0\t1\t2\t0.5\t1\t0.1", "correct is 1 but predict 2 is not label 1"),
    ("0\t1\t1\t0.5\t2\t0.1", "correct must be 0 or 1"),
    ("0\t1\t-1\t0.0\t1\t0.1", "correct is 1 but predict -1 is not label 1"),
])
def test_analyze_checks_the_values_of_every_row(tmp_path, row, expected):
    path = tmp_path / "bad.tsv"
    path.write_text(HEADER + "1\t2\t2\t0.3\t1\t0.1\n" + row + "\n")
    with pytest.raises(ValueError, match=f"{path.name}, line 3: .*{expected}"):
        read_results(path)
    assert not (tmp_path / "analysis").exists()
    with pytest.raises(ValueError, match="line 3"):
        analyze_files([path], out_dir=tmp_path / "analysis")


def test_analyze_refuses_a_repeated_idx(tmp_path):
    path = tmp_path / "twice.tsv"
    path.write_text(HEADER + "0\t1\t1\t0.3\t1\t0.1\n5\t2\t2\t0.3\t1\t0.1\n0\t1\t1\t0.6\t1\t0.1\n")
    with pytest.raises(ValueError, match="line 4: idx 0 is repeated \\(first on line 2\\)"):
        read_results(path)


def test_a_byte_order_mark_is_read_as_nothing(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_text("\ufeff" + HEADER + "0\t1\t1\t0.3\t1\t0.1\n", encoding="utf-8")
    assert read_results(path)[0]["idx"] == 0


# 6 ---------------------------------------------------------------------------------------------

def test_a_second_writer_of_an_output_is_refused_naming_the_first(tmp_path):
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, num_classes=10, hparams=dict(arch="small_cnn", dataset="mnist", sigma=0.5, method="basic"),
                    state_dict=digits_model().state_dict(), epoch=1)
    out = tmp_path / "cert.tsv"
    command = [sys.executable, "-m", "smoothcert", "certify", "--checkpoint", str(checkpoint), "--outfile", str(out), "--n", "2000",
               "--batch", "200", "--max", "40", "--quiet", "--device", "cpu"]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out.is_file() and len(out.read_text().splitlines()) >= 3) and time.time() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended before the second started"
        second = subprocess.run(command + ["--resume"], stderr=subprocess.PIPE, text=True, timeout=120)
        assert second.returncode != 0
        assert f"is being written by process {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        assert first.wait(timeout=600) == 0, first.stderr.read()
    indices = [row["idx"] for row in read_results(out)]
    assert indices == list(range(40))  # the first run's rows, each once


# 7 ---------------------------------------------------------------------------------------------

def write_votes(path, rows, size=3):
    path.write_text("idx\tlabel\tvotes\n" + "".join(f"{r}\n" for r in rows))
    path.with_name(path.name + ".json").write_text(json.dumps({"dataset": "mnist", "split": "train", "n": 10}))
    return path


@pytest.mark.parametrize("rows,expected", [
    (["0\t1\t5,5", "1\t0\t10,0", "2\t0\t-3,13"], "line 4: votes must be non-negative integers"),
    (["0\t1\t5,5", "1\t0\t10,0", "1\t1\t0,10"], "line 4: idx 1 is repeated"),
    (["0\t1\t5,5", "1\t0\t10,0", "2\t0\t10,0,0"], "line 4: 3 votes where line 2 has 2"),
    (["0\t1\t5,5", "1\t0\t0,0", "2\t0\t10,0"], "line 3: no votes"),
    (["0\t1\t5,5", "1\t0\t10,x", "2\t0\t10,0"], "line 3: votes must be non-negative integers"),
    (["0\t1\t5,5", "1\t0\t4,1", "2\t0\t10,0"], "line 3: its votes add up to 5, not the n = 10 its record states"),
])
def test_a_corrupt_votes_file_is_refused_with_its_line(tmp_path, rows, expected):
    path = write_votes(tmp_path / "votes.tsv", rows)
    with pytest.raises(ValueError, match=f"votes.tsv, {expected}"):
        read_votes(path, "mnist", 3)


def with_cell(lines, line, column, value):
    """``lines`` with cell ``column`` of line ``line`` (0: the header) replaced by ``value``."""
    cells = lines[line].rstrip("\n").split("\t")
    cells[column] = value
    return lines[:line] + ["\t".join(cells) + "\n"] + lines[line + 1:]


@pytest.mark.parametrize("tamper,max_count,expected", [
    (lambda lines: with_cell(lines, 3, 0, "9"), 4, "line 4: idx 9 is not among the examples this run selects"),
    (lambda lines: with_cell(lines, 1, 3, "nan"), 4, "line 2: radius must be a finite"),
    (lambda lines: lines, 2, "line 4: idx 2 is not among the examples this run selects"),
])
def test_a_resume_over_rows_this_run_would_not_write_is_refused_and_writes_nothing(tmp_path, tamper, max_count, expected):
    """A row whose idx the run does not select (tampered, or beyond a smaller --max), or whose
    values analyze would refuse, stops the resume before any file is written."""
    smoothed = SmoothedClassifier(digits_model(), 10, 0.5)
    out = tmp_path / "cert.tsv"
    certify_dataset(smoothed, load_dataset("mnist", "test"), out, CertifySettings(n0=10, n=20, max_count=3), progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(tamper(lines)))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=expected):
        certify_dataset(smoothed, load_dataset("mnist", "test"), out, CertifySettings(n0=10, n=20, max_count=max_count),
                        progress=False, resume=True)
    assert snapshot(tmp_path) == before
