"""The comparison of the field's methods: every method of the plan trained and certified the same
way, CAT-RS against the votes of the study's own Gaussian model, resumed from its small files."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import write_cifar_batch

from smoothcert.smoothing.certification import CertifySettings
from smoothcert.cli import main
from smoothcert.studies.compare import CIFAR, PLANS, QUICK, comparison_cells, method_cell, run_comparison
from smoothcert.studies.finished_runs import finished_result
from smoothcert.studies.reproduce import CIFAR_FULL, _figure1_cells, _table1_cells


@pytest.mark.slow  # an end-to-end study of every method on the digits (about 17 s)
def test_the_comparison_tabulates_each_method_with_its_cost_and_resumes(tmp_path):
    plan = replace(QUICK, seeds=(0,), methods=("Basic", "CAT-RS"), votes_n=10,
                   certify=CertifySettings(n0=20, n=100, alpha=0.01, batch_size=200, method="certify", skip=50, max_count=20))
    logged = []
    table = run_comparison(plan, tmp_path / "cmp", progress=False, log=logged.append).read_text()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()[2:]}
    assert set(rows) == {"Basic", "CAT-RS"} and "time / epoch vs Basic" in table.splitlines()[0]
    assert rows["Basic"][-1].strip(" |") == "1.000" and float(rows["CAT-RS"][-1].strip(" |")) > 1  # the attack on the noise costs
    votes = (tmp_path / "cmp" / "gaussian-s0.25" / "votes.tsv").read_text().splitlines()
    assert len(votes) == 4001 and all(sum(map(int, line.split("\t")[2].split(","))) == 10 for line in votes[1:])
    for checkpoint in (tmp_path / "cmp").rglob("checkpoint.pt"):
        checkpoint.unlink()
    assert run_comparison(plan, tmp_path / "cmp", progress=False, log=logged.append).read_text() == table
    assert not list((tmp_path / "cmp").rglob("checkpoint.pt"))  # nothing trained again
    shutil.move(tmp_path / "cmp", tmp_path / "moved")  # the small files alone, in another folder (CAT-RS's votes path moves)
    assert run_comparison(plan, tmp_path / "moved", progress=False, log=logged.append).read_text() == table
    assert not list((tmp_path / "moved").rglob("checkpoint.pt"))


@pytest.mark.slow  # an end-to-end study of every method (about 32 s of the default suite's 342 s)
def test_the_comparison_runs_on_colour_images_from_a_folder(tmp_path, colour_digits, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "cifar10", "--data-dir", str(colour_digits), "--quick", "--out-dir", str(out), "--quiet"]) == 0
    table = (out / "compare.md").read_text()
    for method in ("Basic", "SmoothAdv", "ADRE_REG capped", "ADRE_REG faithful", "MACER", "Consistency", "SmoothMix", "CAT-RS"):
        assert f"| {method} |" in table
    dones = list(out.glob("*/seed0/done.json"))
    assert len(dones) == 8
    for done in dones:
        train = json.loads(done.read_text())["train"]
        assert train["dataset"] == "cifar10" and train["arch"] == "cifar_resnet20" and train["batch_size"] == 100
    assert json.loads((out / "smoothadv" / "seed0" / "done.json").read_text())["train"]["attack_steps"] == 1  # the study's attack
    votes = (out / "gaussian-s0.25" / "votes.tsv").read_text().splitlines()
    assert len(votes) == 201 and all(sum(map(int, line.split("\t")[2].split(","))) == 10 for line in votes[1:])


def test_the_colour_comparison_reuses_the_study_runs_it_shares():
    """Basic and ADRE_REG (capped and faithful) at sigma 0.5 in the CIFAR-10 comparison are the
    colour-image study's cells, setting for setting, and certified the same way, so the study's
    finished runs are reused (their records are compared, a difference is refused). SmoothAdv
    differs only by its step layout."""
    study = {cell.label: cell for cells in _table1_cells(CIFAR_FULL, "d").values() for cell in cells}
    study.update({cell.label: cell for cell in _figure1_cells(CIFAR_FULL, "d")})
    shared = {"Basic": "Basic sigma=0.5", "ADRE_REG capped": "ADRE_REG sigma=0.5 lam=0.2 capped",
              "ADRE_REG faithful": "ADRE_REG sigma=0.5 lam=0.2 faithful"}
    assert CIFAR.certify == CIFAR_FULL.certify and CIFAR.sigma == 0.5
    for name, label in shared.items():
        for seed in CIFAR.seeds:
            assert method_cell(CIFAR, name, "d").config(seed, "out") == study[label].config(seed, "out"), name
    smoothadv, studied = method_cell(CIFAR, "SmoothAdv", "d").config(0, "out"), study["SmoothAdv eps=0.5"].config(0, "out")
    assert smoothadv.chunks == 2 and studied.chunks == 1  # Salman et al.'s layout here; the study pairs it with ADRE_ADV
    assert replace(smoothadv, chunks=1) == studied  # otherwise the study's cell: its attack steps (the plan's override)


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "results" / "compare"


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_the_committed_comparison_is_the_table_its_runs_make(tmp_path, dataset):
    """docs/compare.md quotes docs/results/compare/<dataset>/compare.md: read back from the committed
    small files alone (nothing trains), the plan writes that table again. While a re-run is landing
    run by run, there is no table yet, and every run landed so far is one the plan reuses as it is.
    CIFAR-10's training split is only counted (the votes cover it), so a stand-in folder of the
    subset's 4,660 images serves."""
    data_dir = None
    if dataset == "cifar10":
        folder = tmp_path / "data" / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name, size in [(f"data_batch_{i}", 932) for i in range(1, 6)] + [("test_batch", 932)]:
            write_cifar_batch(folder / name, np.zeros((size, 3, 32, 32), dtype=np.uint8), [0] * size)
        data_dir = str(tmp_path / "data")
    plan = PLANS[(dataset, False)]
    shutil.copytree(COMMITTED / dataset, tmp_path / "runs")
    cells = comparison_cells(plan, tmp_path / "runs", data_dir)
    landed = [finished_result(cell, seed, plan.certify, tmp_path / "runs") for cell in cells for seed in plan.seeds]
    assert all((tmp_path / "runs" / cell.folder / f"seed{seed}").is_dir() == (result is not None)
               for result, (cell, seed) in zip(landed, [(c, s) for c in cells for s in plan.seeds]))  # none refused or half there
    if not all(landed):
        assert not (COMMITTED / dataset / "compare.md").exists()
        return
    table = run_comparison(plan, tmp_path / "runs", data_dir=data_dir, progress=False, log=lambda line: None)
    assert table.read_text() == (COMMITTED / dataset / "compare.md").read_text()
    assert not list((tmp_path / "runs").rglob("checkpoint.pt"))
