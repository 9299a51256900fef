"""The comparison of the field's methods: every method of the plan trained and certified the same
way, CAT-RS against the votes of the study's own Gaussian model, resumed from its small files."""

import json
from dataclasses import replace

from smoothcert.smoothing.certification import CertifySettings
from smoothcert.cli import main
from smoothcert.studies.compare import QUICK, run_comparison


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
    votes = (out / "gaussian-s0.25" / "votes.tsv").read_text().splitlines()
    assert len(votes) == 201 and all(sum(map(int, line.split("\t")[2].split(","))) == 10 for line in votes[1:])
