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
    capsys.readouterr()
    assert main(["reproduce", "--quick", "--out-dir", str(out)]) == 0
    assert "study finished in" in capsys.readouterr().out
