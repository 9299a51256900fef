"""Independent jobs (``--shard K/N``, no process group) and ``smoothcert merge``: the merged file
is the one a single process writes, and shards that do not fit together are refused."""

import json
import subprocess
import sys

import pytest

from smoothcert.cli import main
from smoothcert.storage.tsv import read_results


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "run"
    assert main(["train", "--epochs", "1", "--sigma", "0.5", "--out-dir", str(out), "--quiet"]) == 0
    return out / "checkpoint.pt"


def _rows_but_time(path):
    return [{k: v for k, v in row.items() if k != "time"} for row in read_results(path)]


def _certify(checkpoint, outfile, *extra):
    return ["certify", "--checkpoint", str(checkpoint), "--outfile", str(outfile), "--n", "200", "--batch", "400", "--skip", "25",
            "--max", "10", "--quiet", *extra]


def test_three_independent_shards_merge_to_the_single_process_file(checkpoint, tmp_path, capsys):
    assert main(_certify(checkpoint, tmp_path / "one.tsv")) == 0
    shards = [tmp_path / f"part{k}.tsv" for k in (1, 2, 3)]
    for k, shard in enumerate(shards, start=1):  # three jobs, sharing nothing: the second in its own process
        command = _certify(checkpoint, shard, "--shard", f"{k}/3")
        if k == 2:
            subprocess.run([sys.executable, "-m", "smoothcert", *command], check=True)
        else:
            assert main(command) == 0
    assert [r["idx"] for r in read_results(shards[1])] == [25, 100, 175]  # the 2nd of every 3 selected
    assert json.loads((tmp_path / "part2.tsv.json").read_text())["shard"] == "2/3"
    assert main(["merge", *map(str, shards), "--outfile", str(tmp_path / "merged.tsv")]) == 0
    assert _rows_but_time(tmp_path / "merged.tsv") == _rows_but_time(tmp_path / "one.tsv")
    merged, single = (json.loads((tmp_path / f"{name}.tsv.json").read_text()) for name in ("merged", "one"))
    assert {k: v for k, v in merged.items() if k != "versions"} == {k: v for k, v in single.items() if k != "versions"}
    capsys.readouterr()

    assert main(["merge", str(shards[0]), str(shards[0]), str(shards[2]), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "given twice: ['1/3'], missing: ['2/3']" in capsys.readouterr().err
    assert main(_certify(checkpoint, tmp_path / "other.tsv", "--shard", "2/3", "--seed", "7")) == 0
    assert main(["merge", str(shards[0]), str(tmp_path / "other.tsv"), str(shards[2]), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "seed is 7 there, 0 in" in capsys.readouterr().err
    lines = shards[2].read_text().splitlines(keepends=True)
    shards[2].write_text("".join(lines[:-1]))  # the third job was killed before its last row
    assert main(["merge", *map(str, shards), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "do not cover the selection of 10 examples; missing 1 (first idx 200)" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()
    assert main(["merge", str(tmp_path / "one.tsv"), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "does not name a shard" in capsys.readouterr().err


def test_votes_and_predict_take_their_shard(checkpoint, tmp_path, capsys):
    base = ["predict", "--checkpoint", str(checkpoint), "--n", "100", "--skip", "100", "--max", "7", "--quiet"]
    assert main([*base, "--outfile", str(tmp_path / "p.tsv"), "--shard", "3/3"]) == 0
    assert [int(line.split("\t")[0]) for line in (tmp_path / "p.tsv").read_text().splitlines()[1:]] == [200, 500]
    assert main([*base, "--outfile", str(tmp_path / "q.tsv"), "--shard", "4/3"]) == 2
    assert "shard must read K/N" in capsys.readouterr().err
