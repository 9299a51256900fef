import subprocess
import sys

import pytest

from smoothcert.cli import main
from smoothcert.storage.tsv import CERTIFY_COLUMNS, ResultsFile, read_results


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--epochs", "2", "--sigma", "0.5", "--out-dir", str(out), "--quiet"]) == 0
    return out / "checkpoint.pt"


def test_train_certify_round_trip_writes_the_reference_columns(checkpoint, tmp_path):
    outfile = tmp_path / "cert.tsv"
    assert main(["certify", "--checkpoint", str(checkpoint), "--outfile", str(outfile), "--n", "500", "--batch", "250",
                 "--method", "both", "--skip", "10", "--max", "8", "--quiet"]) == 0
    certify, tcertify = tmp_path / "cert.certify.tsv", tmp_path / "cert.tcertify.tsv"
    header = certify.read_text().splitlines()[0].split("\t")
    assert header[:6] == ["idx", "label", "predict", "radius", "correct", "time"]
    rows, t_rows = read_results(certify), read_results(tcertify)
    assert [r["idx"] for r in rows] == [0, 10, 20, 30, 40, 50, 60, 70]
    assert sum(r["correct"] for r in rows) >= 6  # the model is 2 epochs old but these are easy digits
    for row in rows:
        assert row["correct"] == (row["predict"] == row["label"])
        assert (row["radius"] > 0) == (row["predict"] != -1)
    assert [r["idx"] for r in t_rows] == [r["idx"] for r in rows]
    for row, t_row in zip(rows, t_rows):  # both take the class that counts0 selects
        assert t_row["predict"] in (row["predict"], -1) or row["predict"] == -1
        assert float(t_row["level"]) == 0.001 and int(t_row["samples"]) == 500


def test_certify_resumes_and_matches_an_uninterrupted_run(checkpoint, tmp_path):
    base = ["certify", "--checkpoint", str(checkpoint), "--n", "300", "--batch", "300", "--quiet"]
    assert main([*base, "--outfile", str(tmp_path / "whole.tsv"), "--max", "6"]) == 0
    assert main([*base, "--outfile", str(tmp_path / "part.tsv"), "--max", "3"]) == 0
    with (tmp_path / "part.tsv").open("a") as handle:
        handle.write("3\t7\t7\t0.1")  # a row cut off mid-write
    assert main([*base, "--outfile", str(tmp_path / "part.tsv"), "--max", "6", "--resume"]) == 0
    strip = lambda path: [{k: v for k, v in r.items() if k != "time"} for r in read_results(path)]
    assert strip(tmp_path / "part.tsv") == strip(tmp_path / "whole.tsv")


def test_predict_writes_a_row_per_example(checkpoint, tmp_path):
    outfile = tmp_path / "pred.tsv"
    assert main(["predict", "--checkpoint", str(checkpoint), "--outfile", str(outfile), "--n", "200", "--max", "4", "--quiet"]) == 0
    lines = outfile.read_text().splitlines()
    assert lines[0].split("\t")[:5] == ["idx", "label", "predict", "correct", "time"] and len(lines) == 5


def test_errors_are_reported_without_a_traceback(tmp_path, capsys):
    assert main(["certify", "--checkpoint", str(tmp_path / "none.pt"), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["certify", "--checkpoint", str(tmp_path / "junk.pt"), "--outfile", str(tmp_path / "x.tsv")]) == 2
    assert "is not a readable checkpoint" in capsys.readouterr().err
    assert main(["train", "--method", "adre", "--out-dir", str(tmp_path / "t"), "--quiet"]) == 2
    assert "needs lam > 0" in capsys.readouterr().err


def test_an_output_holding_other_columns_is_never_written_over(checkpoint, tmp_path, capsys):
    outfile = tmp_path / "other.tsv"
    outfile.write_text("a\tb\n1\t2\n")
    assert main(["certify", "--checkpoint", str(checkpoint), "--outfile", str(outfile), "--n", "100", "--max", "1", "--quiet"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert outfile.read_text() == "a\tb\n1\t2\n"
    with pytest.raises(ValueError, match="other columns"):
        ResultsFile(outfile, CERTIFY_COLUMNS)
    assert tuple(CERTIFY_COLUMNS[:6]) == ("idx", "label", "predict", "radius", "correct", "time")


def test_demo_prints_the_table(tmp_path):
    out = subprocess.run([sys.executable, "-m", "smoothcert", "demo", "--epochs", "1", "--n", "200", "--max", "20",
                          "--out-dir", str(tmp_path / "demo"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for row in ("Basic, CERTIFY", "Basic, T-CERTIFY", "ADRE_REG lam=0.2, cap 6.9, CERTIFY", "ADRE_REG lam=0.2, cap 6.9, T-CERTIFY"):
        line = next(l for l in out.stdout.splitlines() if l.startswith(f"| {row} "))
        accuracy_at_zero = float(line.split("|")[2])
        assert 0.5 <= accuracy_at_zero <= 1.0
    # the demo's subset of the class-ordered test split spans every class
    assert {r["label"] for r in read_results(tmp_path / "demo" / "basic" / "certify.certify.tsv")} == set(range(10))


def test_early_stopping_uses_fewer_samples_and_agrees_at_the_target(checkpoint, tmp_path, capsys):
    base = ["certify", "--checkpoint", str(checkpoint), "--n", "2000", "--batch", "500", "--skip", "50", "--max", "12", "--quiet"]
    assert main([*base, "--outfile", str(tmp_path / "early.tsv"), "--target-radius", "0.25"]) == 0
    assert main([*base, "--outfile", str(tmp_path / "full.tsv")]) == 0
    early, full = read_results(tmp_path / "early.tsv"), read_results(tmp_path / "full.tsv")
    samples = [int(r["samples"]) for r in early]
    assert all(s <= 2000 for s in samples) and sum(samples) < 0.5 * 2000 * len(samples)
    assert all(int(r["samples"]) == 2000 for r in full)
    certified_early = sum(r["correct"] and r["radius"] >= 0.25 for r in early)
    certified_full = sum(r["correct"] and r["radius"] >= 0.25 for r in full)
    assert certified_early >= certified_full - 2
    assert main([*base, "--outfile", str(tmp_path / "x.tsv"), "--target-radius", "0.25", "--method", "both"]) == 2
    assert "early stopping" in capsys.readouterr().err


def test_grid_certification_writes_the_fixed_n_curve_with_fewer_samples_and_resumes(checkpoint, tmp_path):
    import json

    base = ["certify", "--checkpoint", str(checkpoint), "--n", "5000", "--batch", "1000", "--skip", "40", "--max", "12", "--quiet"]
    grid = ["--radii", "0.25,0.5,0.75"]
    assert main([*base, "--outfile", str(tmp_path / "grid.tsv"), *grid]) == 0
    assert main([*base, "--outfile", str(tmp_path / "fixed.tsv")]) == 0
    by_grid, fixed = read_results(tmp_path / "grid.tsv"), read_results(tmp_path / "fixed.tsv")
    assert json.loads((tmp_path / "grid.tsv.json").read_text())["radii"] == "0.25,0.5,0.75"
    samples = [int(r["samples"]) for r in by_grid]
    assert max(samples) <= 1.25 * 5000 and sum(samples) < 0.5 * 5000 * len(samples)  # the last look at 1.25 n
    for radius in (0.0, 0.25, 0.5, 0.75):  # the same curve, within a row or two of noise
        at = lambda rows: sum(r["correct"] and r["radius"] >= radius and r["predict"] >= 0 for r in rows)
        assert abs(at(by_grid) - at(fixed)) <= 2
    for row in by_grid:  # a level certified by the sequence reports its grid radius; at n, Clopper-Pearson's
        assert row["radius"] in (0.0, 0.25, 0.5, 0.75) or int(row["samples"]) == 6250
    assert main([*base, "--outfile", str(tmp_path / "part.tsv"), *grid, "--max", "5"]) == 0
    assert main([*base, "--outfile", str(tmp_path / "part.tsv"), *grid, "--resume"]) == 0
    strip = lambda path: [{k: v for k, v in r.items() if k != "time"} for r in read_results(path)]
    assert strip(tmp_path / "part.tsv") == strip(tmp_path / "grid.tsv")
    assert main([*base, "--outfile", str(tmp_path / "part.tsv"), "--radii", "auto", "--resume"]) == 2


def test_fast_options_are_recorded_and_keep_the_certificates(checkpoint, tmp_path):
    import json

    base = ["certify", "--checkpoint", str(checkpoint), "--n", "500", "--batch", "250", "--max", "5", "--quiet"]
    assert main([*base, "--outfile", str(tmp_path / "plain.tsv")]) == 0
    assert main([*base, "--outfile", str(tmp_path / "fast.tsv"), "--fold-bn", "--channels-last"]) == 0
    record = json.loads((tmp_path / "fast.tsv.json").read_text())
    assert record["fast"] == {"fold_bn": True, "channels_last": True, "compile": False, "bf16": False}
    assert record["n"] == 500 and record["checkpoint"] == str(checkpoint)
    assert json.loads((tmp_path / "plain.tsv.json").read_text())["fast"]["fold_bn"] is False
    plain, fast = read_results(tmp_path / "plain.tsv"), read_results(tmp_path / "fast.tsv")
    assert [(r["predict"], r["radius"]) for r in plain] == [(r["predict"], r["radius"]) for r in fast]



def test_train_help_shows_each_default_and_the_presets_that_change_it(capsys):
    from smoothcert.training.config import PRESETS, TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "-h"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "epochs between learning-rate drops (step) [default 10; cifar10 50]" in shown
    assert "SGD momentum [default 0.9; imagenet 0.875]" in shown
    assert f"[default {TrainConfig.epochs}; cifar10 {PRESETS['cifar10']['epochs']}, imagenet {PRESETS['imagenet']['epochs']}]" in shown


@pytest.mark.parametrize("command,names", [("paper", ["sigma", "lam", "data_dir", "device", "workers"]),
                                           ("certify", ["data_dir", "device"]), ("votes", ["data_dir", "device"])])
def test_options_of_a_training_setting_carry_its_declared_help(capsys, command, names):
    from smoothcert.training.config import TrainConfig

    with pytest.raises(SystemExit):
        main([command, "-h"])
    shown = " ".join(capsys.readouterr().out.split())
    for name in names:
        assert TrainConfig.__dataclass_fields__[name].metadata["help"] in shown, name
