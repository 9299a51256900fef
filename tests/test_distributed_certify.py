"""Certification shared between two CPU processes under torchrun gives the rows of one process."""

import os
import subprocess
import sys

from smoothcert.cli import main
from smoothcert.storage.tsv import read_results


def test_two_processes_write_the_rows_of_one(tmp_path):
    assert main(["train", "--epochs", "1", "--sigma", "0.5", "--out-dir", str(tmp_path / "model"), "--quiet"]) == 0
    common = ["certify", "--checkpoint", str(tmp_path / "model" / "checkpoint.pt"), "--N", "300", "--batch", "400",
              "--method", "both", "--skip", "7", "--max-count", "11", "--quiet", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "smoothcert",
                          *common, "--outfile", str(tmp_path / "two.tsv")], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert main([*common, "--outfile", str(tmp_path / "one.tsv")]) == 0
    for name in ("certify", "tcertify"):
        two, one = read_results(tmp_path / f"two.{name}.tsv"), read_results(tmp_path / f"one.{name}.tsv")
        assert [r["idx"] for r in one] == [7 * i for i in range(11)]
        strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]
        assert strip(two) == strip(one)
    assert not list(tmp_path.glob("*.rank*"))  # the shards were merged and removed
