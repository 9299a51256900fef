import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smoothcert.storage.tsv import CERTIFY_COLUMNS, ResultsFile, format_value, parse_time, read_results


def test_cohen_format_with_mixed_time_cells(tmp_path):
    path = tmp_path / "cohen.tsv"
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t3\t3\t0.512\t1\t15.4\n20\t8\t-1\t0.0\t0\t0:00:15.412345\n"
                    "40\t1\t2\t0.13\t0\t1 day, 2:03:04\n")
    rows = read_results(path)
    assert [r["time"] for r in rows] == [15.4, pytest.approx(15.412345), 86400 + 2 * 3600 + 3 * 60 + 4]
    assert [r["correct"] for r in rows] == [True, False, False]
    assert rows[1]["predict"] == -1 and rows[0]["radius"] == 0.512


def test_malformed_files_are_refused(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("idx\tlabel\tpredict\n0\t1\t1\n")
    with pytest.raises(ValueError, match="lacks the column"):
        read_results(path)
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_results(path)
    with pytest.raises(ValueError, match="duration"):
        parse_time("soon")


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    from smoothcert.storage.atomic import write_text_atomic

    mask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o644
    assert not list(tmp_path.glob(".a.txt.*"))  # no temporary file left behind


def test_bounds_are_written_rounded_in_their_safe_direction(tmp_path):
    from smoothcert.analysis.accuracy import certified_accuracy

    path = tmp_path / "boundary.tsv"
    row = dict(idx=0, label=1, predict=1, radius=0.24999996, correct=True, time=1.0, pa_lower=0.59870630,
               pb_upper=0.40129370000000004, alpha_prime=0.001, level=0.001, samples=100)
    with ResultsFile(path, CERTIFY_COLUMNS) as results:
        results.append(row)
    (written,) = read_results(path)
    assert written["radius"] == 0.249999  # rounded to nearest it would read 0.25 and count as certified there
    assert certified_accuracy([written], [0.25])[0] == 0.0
    assert float(written["pa_lower"]) <= row["pa_lower"] and float(written["pb_upper"]) >= row["pb_upper"]
    assert written["pb_upper"] == "0.401294"


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_directed_rounding_never_crosses_the_value(value):
    from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR

    assert float(format_value(value, ROUND_FLOOR)) <= value <= float(format_value(value, ROUND_CEILING))
    assert abs(float(format_value(value, ROUND_DOWN))) <= abs(value)
    assert float(format_value(value, ROUND_DOWN)) == pytest.approx(value, rel=1e-5, abs=1e-300)


def test_the_level_column_is_rounded_up(tmp_path):
    """A certificate's level bounds the probability that it is wrong: written, it may only grow."""
    from smoothcert.storage.tsv import CERTIFY_COLUMNS, ResultsFile

    row = dict(idx=0, label=1, predict=1, radius=0.5, correct=True, time=0.1, pa_lower=0.9, pb_upper=0.1, alpha_prime=0.001,
               level=0.00012345641, samples=100)
    with ResultsFile(tmp_path / "r.tsv", CERTIFY_COLUMNS) as results:
        results.append(row)
    written = (tmp_path / "r.tsv").read_text().splitlines()[1].split("\t")[CERTIFY_COLUMNS.index("level")]
    assert written == "0.000123457" and float(written) >= row["level"]
