"""`smoothcert replay`: a fixed-n log's counts recovered from its radii, and the grid rule
replayed on them, on a log made here with known probabilities (no published data needed)."""

import numpy as np
import pytest
from scipy import special, stats

from smoothcert.analysis.replay import oracle_samples, recover_counts, replay_log
from smoothcert.cli import main

N, ALPHA, SIGMA = 10_000, 0.001, 0.5


def cp_radius(k):
    return SIGMA * special.ndtri(stats.beta.ppf(ALPHA, k, N - k + 1))


def write_log(path, probabilities, seed=0):
    """A log as CERTIFY at n = 10,000 writes it (radius to 3 decimals), every row correct, an
    abstention where the bound is at most 1/2."""
    rng = np.random.default_rng(seed)
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    for idx, p in enumerate(probabilities):
        k = rng.binomial(N, p)
        lower = stats.beta.ppf(ALPHA, k, N - k + 1)
        row = (idx, 1, 1, f"{SIGMA * special.ndtri(lower):.3f}", 1) if lower > 0.5 else (idx, 1, -1, "0.0", 0)
        lines.append("\t".join(map(str, row)) + "\t0.1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_counts_come_back_from_their_radii():
    counts = np.array([5_200, 7_000, 9_500, 9_990])
    written = np.round(cp_radius(counts), 3)
    recovered = recover_counts(written, SIGMA, N, ALPHA)
    assert np.all(np.abs(recovered - counts) <= 5)  # three decimals of the radius pin p = k / n to 5e-4 (closest near 1/2)
    assert recovered[2] == 9_500 and recovered[3] == 9_990


def test_the_oracle_needs_the_fewest_samples_that_pass_one_test():
    threshold = special.ndtr(0.5 / SIGMA)
    m = int(oracle_samples(np.array([0.95]), np.array([threshold]), N, ALPHA)[0])
    passes = lambda size: stats.beta.ppf(ALPHA, int(size * 0.95), size - int(size * 0.95) + 1) > threshold
    assert passes(m) and not passes(m - 1)


def test_the_replay_keeps_the_curve_and_samples_less(tmp_path, capsys):
    probabilities = np.random.default_rng(1).choice([0.45, 0.7, 0.9, 0.99, 0.999], size=300)
    log = write_log(tmp_path / "log.tsv", probabilities)
    replay = replay_log(log, SIGMA, N, ALPHA, seed=0)
    assert replay.rows == 300 and replay.abstained == int(np.sum(np.array([r.split("\t")[2] for r in log.read_text().split("\n")[1:-1]]) == "-1"))
    assert replay.grid_mean < N / 2 and replay.oracle_mean <= replay.grid_mean
    assert np.max(np.abs(replay.fixed_accuracy - replay.grid_accuracy)) <= 0.02
    assert main(["replay", str(log), "--sigma", str(SIGMA), "--n", str(N)]) == 0
    out = capsys.readouterr().out
    assert "| log.tsv | " in out and "r=0.5:" in out


@pytest.mark.parametrize("argv,message", [(["--sigma", "0"], "sigma must be a positive finite number"),
                                          (["--sigma", "0.5", "--radii", "0.5", "0.25"], "radii must be a non-empty increasing")])
def test_bad_replay_settings_are_refused_in_one_line(tmp_path, capsys, argv, message):
    log = write_log(tmp_path / "log.tsv", [0.9] * 5)
    assert main(["replay", str(log), *argv]) == 2
    assert message in capsys.readouterr().err
