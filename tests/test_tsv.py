import pytest

from smoothcert.tsv import parse_time, read_results


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

    from smoothcert.files import write_text_atomic

    mask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o644
    assert not list(tmp_path.glob(".a.txt.*"))  # no temporary file left behind
