import json

import pytest

from smoothcert.cli import main


@pytest.mark.slow
def test_quick_study_writes_every_table_and_figure(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["reproduce", "--quick", "--out-dir", str(out), "--quiet"]) == 0
    for name in ("table1", "figure1", "figure2", "tcertify_gain"):
        assert (out / f"{name}.md").is_file() and (out / f"{name}.tex").is_file()
    for name in ("figure1", "figure2"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG" and (out / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    table1 = (out / "table1.md").read_text()
    assert "Basic sigma=0.5" in table1 and "lam=0.2 capped" in table1 and "lam=0.2 faithful" in table1
    # resuming recomputes nothing: the second invocation only reads what is there
    made = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.suffix in (".pt", ".tsv")}
    assert any(path.suffix == ".tsv" for path in made) and any(path.suffix == ".pt" for path in made)
    assert main(["reproduce", "--quick", "--out-dir", str(out)]) == 0
    assert {path: path.stat().st_mtime_ns for path in made} == made


@pytest.mark.slow  # an end-to-end study on colour images (about 12 s)
def test_cifar10_study_runs_from_a_folder_and_resumes_from_its_small_files(tmp_path, colour_digits, capsys):
    out = tmp_path / "study"
    command = ["reproduce", "--dataset", "cifar10", "--data-dir", str(colour_digits), "--quick", "--out-dir", str(out), "--quiet"]
    assert main(command) == 0
    table1 = (out / "table1.md").read_text()
    assert "Basic sigma=0.25" in table1 and "lam=0.2 capped" in table1 and "lam=0.2 faithful" in table1
    runs = sorted(out.glob("*/seed*"))
    assert len(runs) == 10  # Basic, ADRE capped and faithful, SmoothAdv, ADRE_ADV; two seeds each
    for run in runs:
        hparams = json.loads((run / "done.json").read_text())["train"]
        assert hparams["dataset"] == "cifar10" and hparams["arch"] == "cifar_resnet20"
        header = (run / "log.csv").read_text().splitlines()[0].split(",")
        assert {"all_correct", "max_logit", "l_adre", "test_noisy_acc"} <= set(header)
    # without checkpoints, the finished runs are read from their small files: nothing is trained again
    for checkpoint in out.glob("*/seed*/checkpoint.pt"):
        checkpoint.unlink()
    before = table1
    assert main(command) == 0
    assert not list(out.glob("*/seed*/checkpoint.pt")) and (out / "table1.md").read_text() == before


def test_cifar10_study_needs_its_folder(capsys):
    assert main(["reproduce", "--dataset", "cifar10", "--quick"]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_a_finished_runs_record_keeps_what_it_computed_and_drops_where():
    from smoothcert.smoothing.certification import CertifySettings
    from smoothcert.studies.finished_runs import _record
    from smoothcert.training.config import preset

    record = _record(preset("mnist", batch_size=50, out_dir="/somewhere"), CertifySettings(batch_size=300))
    assert record["train"]["batch_size"] == 50 and "out_dir" not in record["train"]  # the training batch changes the weights
    assert "batch_size" not in record["certify"]  # the certification batch does not change the counts


def test_a_run_recorded_before_a_setting_existed_is_reused_and_one_that_differs_is_refused(tmp_path):
    from smoothcert.smoothing.certification import CertifySettings
    from smoothcert.studies.finished_runs import DONE, _finished, _record
    from smoothcert.training.config import preset

    record = _record(preset("mnist", out_dir="/somewhere"), CertifySettings(method="both"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "cert.tsv").write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0.1\n")
    older = {part: dict(values) for part, values in record.items()}
    del older["train"]["gamma"], older["train"]["eta"]  # recorded before MACER and Consistency existed: their defaults
    (run / DONE).write_text(json.dumps({**older, "results": {"certify": "cert.tsv"}, "seconds": 3.0}))
    finished = _finished(run, record)
    assert finished is not None and finished.seconds == 3.0 and finished.rows["certify"][0]["radius"] == 0.5
    older["train"]["lam"] = 0.3
    (run / DONE).write_text(json.dumps({**older, "results": {"certify": "cert.tsv"}, "seconds": 3.0}))
    with pytest.raises(ValueError, match="other settings"):
        _finished(run, record)


def test_a_faithful_run_is_its_capped_twin_when_the_cap_never_bound(tmp_path):
    from smoothcert.smoothing.certification import CertifySettings
    from smoothcert.studies.finished_runs import Cell, run_seed
    from smoothcert.training.config import preset

    def cell(name, cap, twin=None, lam=0.1):
        settings = dict(method="adre", k=2, lam=lam, single_draw_per=True, batch_size=200, epochs=1, adre_cap=cap)
        return Cell(name, name, lambda seed, out: preset("mnist", seed=seed, out_dir=out, **settings), twin)

    certify = CertifySettings(n0=20, n=60, alpha=0.01, batch_size=60, method="both", max_count=4)
    capped = run_seed(cell("capped", 50.0), 0, certify, tmp_path, progress=False)
    faithful = run_seed(cell("faithful", None, "capped"), 0, certify, tmp_path, progress=False)
    assert faithful.same_as == "capped/seed0" and faithful.rows == capped.rows
    assert not (tmp_path / "faithful" / "seed0" / "checkpoint.pt").exists()  # not trained
    assert (tmp_path / "faithful" / "seed0" / "log.csv").read_text() == (tmp_path / "capped" / "seed0" / "log.csv").read_text()
    assert run_seed(cell("faithful", None, "capped"), 0, certify, tmp_path, progress=False).same_as == "capped/seed0"
    # a twin whose cap bound, or one that differs in another setting, does not stand in: the run trains
    run_seed(cell("tight", 0.5), 0, certify, tmp_path, progress=False)
    bound = run_seed(cell("after-tight", None, "tight"), 0, certify, tmp_path, progress=False)
    assert bound.same_as is None and (tmp_path / "after-tight" / "seed0" / "checkpoint.pt").is_file()
    untimed = [{name: [{k: v for k, v in row.items() if k != "time"} for row in rows] for name, rows in run.rows.items()}
               for run in (bound, capped)]
    assert untimed[0] == untimed[1]  # the faithful objective trained again: the loose twin's steps, recomputed
    other = run_seed(cell("other-lam", None, "capped", lam=0.2), 0, certify, tmp_path, progress=False)
    assert other.same_as is None and (tmp_path / "other-lam" / "seed0" / "checkpoint.pt").is_file()
