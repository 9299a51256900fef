"""The default fix for the page-fault tax on large CPU batches (smoothcert.runtime.allocator): it removes
most page faults of repeated large forward passes and changes no certificate."""

import os
import subprocess
import sys

import pytest

from smoothcert.runtime.allocator import LEAVE_ALLOCATOR

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")

FAULTS = """
import resource, sys, torch
from smoothcert.runtime.allocator import keep_heap_memory
from smoothcert.models import build_model
print(keep_heap_memory())
torch.manual_seed(0)
model = build_model("cifar_resnet20", 10, [0.5] * 3, [0.25] * 3).eval()
x = torch.rand(300, 3, 32, 32)
with torch.inference_mode():
    for _ in range(2):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        model(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(code, keep):
    env = {**os.environ, LEAVE_ALLOCATOR: "0" if keep else "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    return out.stdout.split()


@pytest.mark.slow  # repeated passes to count page faults (about 17 s)
def test_keeping_the_heap_removes_the_page_faults_of_repeated_passes():
    applied, kept = _run(FAULTS, keep=True)
    not_applied, default = _run(FAULTS, keep=False)
    assert (applied, not_applied) == ("True", "False")
    # each pass over 300 images maps its 20 MiB activations afresh without the fix
    assert int(default) > 5_000 and int(kept) < int(default) / 5


@pytest.mark.slow  # two certifications of the same inputs (about 19 s)
def test_certificates_are_the_same_with_and_without_the_fix(checkpoint, tmp_path):
    rows = {}
    for keep in (True, False):
        out = tmp_path / f"keep{keep}.tsv"
        env = {**os.environ, LEAVE_ALLOCATOR: "0" if keep else "1"}
        subprocess.run([sys.executable, "-m", "smoothcert", "certify", "--checkpoint", str(checkpoint), "--outfile", str(out),
                        "--n", "500", "--batch", "1000", "--skip", "50", "--max", "6", "--method", "both", "--quiet"],
                       env=env, check=True, capture_output=True, timeout=300)
        rows[keep] = [[cells[:5] + cells[6:] for cells in (line.split("\t") for line in (tmp_path / f"keep{keep}.{name}.tsv").read_text().splitlines())]
                      for name in ("certify", "tcertify")]  # every column but the time
    assert rows[True] == rows[False] and len(rows[True][0]) == 7  # header and 6 rows
    assert any(float(cells[3]) > 0 for cells in rows[True][0][1:])  # some inputs certified
