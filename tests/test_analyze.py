import csv
import math
import re

import numpy as np
import pytest

from scipy import special
from scipy.stats import binom

from smoothcert.statistics import bounds
from smoothcert.analysis.accuracy import accuracy_lower_bound, false_certificate_allowance, summarize
from smoothcert.analysis.report import analyze_files
from smoothcert.analysis.tables import latex_table, markdown_table
from smoothcert.cli import main
from smoothcert.storage.tsv import read_results

OURS = """idx\tlabel\tpredict\tradius\tcorrect\ttime\tpa_lower\tpb_upper\talpha_prime\tlevel
0\t1\t1\t0.6\t1\t1.0\t0.9\t0.1\t0.001\t0.001
1\t2\t2\t0.3\t1\t1.0\t0.8\t0.2\t0.001\t0.001
2\t3\t5\t0.9\t0\t1.0\t0.95\t0.05\t0.001\t0.001
3\t4\t-1\t0.0\t0\t1.0\t0.4\t0.6\t0.001\t0.001
"""
COHEN = """idx\tlabel\tpredict\tradius\tcorrect\ttime
0\t1\t1\t1.2\t1\t0:00:15.412345
20\t2\t2\t0.2\t1\t15.4
40\t3\t-1\t0.0\t0\t0:00:14.100000
"""


@pytest.fixture
def files(tmp_path):
    ours, cohen = tmp_path / "ours.tsv", tmp_path / "cohen.tsv"
    ours.write_text(OURS)
    cohen.write_text(COHEN)
    return ours, cohen


def test_known_answers(files):
    ours, cohen = files
    s = summarize(read_results(ours), "ours", radii=[0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(s.accuracy, [0.5, 0.5, 0.25, 0.0])
    assert s.acr == pytest.approx((0.6 + 0.3) / 4)
    assert s.abstention == 0.25
    c = summarize(read_results(cohen), "cohen", radii=[0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(c.accuracy, [2 / 3, 1 / 3, 1 / 3, 0])
    assert c.acr == pytest.approx(1.4 / 3)
    assert c.abstention == pytest.approx(1 / 3)


def test_lower_bound_is_the_binomial_quantile_bound():
    acc = np.array([0.8, 0.01])
    m, alpha, rho = 500, 0.1, 0.001
    # k*: the smallest k with P(Bin(m, alpha) <= k) >= 1 - rho, by a plain search over k
    k_star = next(k for k in range(m + 1) if binom.cdf(k, m, alpha) >= 1 - rho)
    assert false_certificate_allowance(m, alpha, rho) == k_star == 72
    np.testing.assert_array_equal(accuracy_lower_bound(acc, m, alpha, rho), [0.8 - k_star / m, 0.0])
    # the deduction (0.144) is more than the earlier formula's 0.140, which was not a valid bound
    old = alpha + math.sqrt(alpha * (1 - alpha) * math.log(1 / rho) / m) + math.log(1 / rho) / (3 * m)
    assert k_star / m > old + 0.003
    for m, alpha, rho in [(1, 0.5, 0.5), (1000, 0.001, 0.001), (10_000, 0.0019, 1e-6), (50, 1e-9, 0.01)]:
        k = false_certificate_allowance(m, alpha, rho)
        assert binom.sf(k, m, alpha) <= rho and (k == 0 or binom.sf(k - 1, m, alpha) > rho)
    with pytest.raises(ValueError, match="rho"):
        accuracy_lower_bound(acc, m, alpha, 1.0)


def test_lower_bound_holds_by_simulation():
    # m test inputs whose true top-class probability 0.8 puts their exact radius just below r:
    # none is truly certified at r, and each is counted as certified at r exactly when CERTIFY's
    # bound fails, at a rate close to alpha. Over many certification runs the bound exceeds the
    # true certified accuracy (0) at most at rate rho, where deducting only alpha (the expected
    # share of false certificates) fails far more often (17% here).
    m, n, alpha, rho, sigma, runs = 200, 300, 0.1, 0.05, 1.0, 1000
    r = sigma * special.ndtri(0.8) * (1 + 1e-4)
    rng = np.random.default_rng(11)
    misses = naive_misses = 0
    for _ in range(runs):
        pa = bounds.cp_lower(rng.binomial(n, 0.8, size=m), n, alpha)
        counted = float(np.mean((pa > 0.5) & (sigma * special.ndtri(pa) >= r)))
        misses += accuracy_lower_bound(np.array([counted]), m, alpha, rho)[0] > 0
        naive_misses += counted - alpha > 0
    assert misses / runs <= binom.isf(1e-4, runs, rho) / runs
    assert naive_misses / runs > 3 * rho


def test_level_is_read_from_the_rows_and_a_contradicting_alpha_is_refused(files, tmp_path):
    ours, cohen = files
    paper = tmp_path / "paper.tsv"
    paper.write_text(OURS.replace("0.001\t0.001\n", "0.001\t0.0019\n", 1))  # one row at the paper grid's 1.9 alpha
    assert summarize(read_results(ours), "ours").alpha == 0.001
    assert summarize(read_results(paper), "paper").alpha == 0.0019  # the largest level of the file
    assert summarize(read_results(cohen), "cohen").alpha == 0.001  # records none: Cohen et al.'s default
    assert summarize(read_results(cohen), "cohen", alpha=0.01).alpha == 0.01
    with pytest.raises(ValueError, match="records certificates valid at level 0.0019, but alpha 0.001 was given"):
        summarize(read_results(paper), "paper", alpha=0.001)
    assert main(["analyze", str(paper), "--alpha", "0.001", "--out-dir", str(tmp_path / "x")]) == 2
    with pytest.raises(ValueError, match="level 0.0019, but alpha 0.01"):
        analyze_files([paper, cohen], radii=[0, 0.5], alpha=0.01)  # --alpha is for files recording no level
    analyze_files([paper, cohen], out_dir=tmp_path / "out", radii=[0, 0.5])
    with (tmp_path / "out" / "analysis.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["alpha"] for row in rows] == ["0.0019", "0.001"]
    assert float(rows[0]["lower@0"]) == pytest.approx(max(0, 0.5 - false_certificate_allowance(4, 0.0019, 0.001) / 4))


def _numbers(text):
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


def test_tables_parse_back_to_the_same_numbers(files, tmp_path):
    ours, cohen = files
    radii = [0, 0.25, 0.5]
    summaries, written = analyze_files([ours, cohen], ["ours_1", "Cohen"], tmp_path / "out", radii=radii)
    assert sorted(p.suffix for p in written) == [".csv", ".md", ".pdf", ".png", ".tex"]
    for summary in summaries:
        values = [*summary.accuracy, summary.acr, summary.abstention]
        md_row = next(l for l in markdown_table(summaries).splitlines() if l.startswith(f"| {summary.name} "))
        assert _numbers(md_row) == pytest.approx(values, abs=5e-4)
        tex_row = next(l for l in latex_table(summaries).splitlines() if l.startswith(summary.name.replace("_", r"\_")))
        assert _numbers(re.sub(r"\\textbf\{([^}]*)\}", r"\1", tex_row)) == pytest.approx(values, abs=5e-3)
    with (tmp_path / "out" / "analysis.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[1]["acc@0.25"]) == pytest.approx(1 / 3, rel=1e-5) and rows[0]["examples"] == "4"
    assert (tmp_path / "out" / "analysis.png").read_bytes()[:4] == b"\x89PNG"


def test_latex_marks_the_best_of_each_column(files):
    ours, cohen = files
    summaries, _ = analyze_files([ours, cohen], ["a", "b"], radii=[0, 1.0])
    lines = latex_table(summaries).splitlines()
    a, b = next(l for l in lines if l.startswith("a &")), next(l for l in lines if l.startswith("b &"))
    assert r"\textbf{0.67}" in b and r"\textbf{0.50}" not in a  # accuracy at 0: b is better
    assert r"\textbf{0.25}" in a  # lowest abstention rate


def test_cli(files, tmp_path, capsys):
    ours, cohen = files
    assert main(["analyze", str(ours), str(cohen), "--out-dir", str(tmp_path / "cli"), "--paired", "--radii", "0", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "| ours |" in printed and "| cohen |" in printed
    assert main(["analyze", str(ours), "--labels", "x", "y"]) == 2
    assert "one label per file" in capsys.readouterr().err


def test_files_of_the_same_name_are_labelled_by_their_shortest_distinguishing_path(files, tmp_path, capsys):
    ours, _ = files
    copies = [tmp_path / "study" / cell / seed / "cert.certify.tsv" for cell in ("basic", "adre") for seed in ("seed0", "seed1")]
    for path in copies:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OURS)
    summaries, _ = analyze_files([*copies, ours], radii=[0])
    assert [s.name for s in summaries] == ["basic/seed0/cert.certify", "basic/seed1/cert.certify", "adre/seed0/cert.certify",
                                           "adre/seed1/cert.certify", "ours"]
    assert main(["analyze", str(copies[0]), str(copies[2]), "--radii", "0", "--out-dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| basic/seed0/cert.certify |" in printed and "| adre/seed0/cert.certify |" in printed
