import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from reference import ref_cp_lower, ref_cp_upper, ref_pb_upper
from smoothcert import (
    ABSTAIN,
    PAPER_GRID,
    certify_from_counts,
    predict_from_counts,
    t_certify_from_counts,
)
from smoothcert.statistics.certificates import grid_level


def ref_pb_upper_max(others, n, alpha):
    """The Clopper-Pearson upper bound on the largest other count, by root finding."""
    return ref_cp_upper(int(np.max(others)), n, alpha)


def ref_t_certify_radius(counts0, counts, alpha, sigma, grid, abstain="half", pb_bound="max"):
    """Algorithm 2 written out split by split with the reference bounds."""
    top = int(np.argmax(counts0))
    n = int(np.sum(counts))
    others = np.delete(counts, top)
    best = 0.0
    for g in grid:
        a = g * alpha
        pa = ref_cp_lower(int(counts[top]), n, a)
        pb = 1 - pa if g == 1.0 else (ref_pb_upper_max if pb_bound == "max" else ref_pb_upper)(others, n, alpha - a)
        ok = pa > 0.5 if abstain == "half" else pa > pb
        if ok:
            best = max(best, sigma / 2 * (sps.norm.ppf(pa) - sps.norm.ppf(pb)))
    return best


def test_predict_is_the_binomial_test_on_the_top_two():
    counts = np.array([10, 480, 510, 0])
    pred = predict_from_counts(counts, 0.05)
    assert pred.pvalue == pytest.approx(sps.binomtest(510, 990, 0.5).pvalue)
    assert pred.label == ABSTAIN  # 510 vs 480 is not significant at 0.05
    assert predict_from_counts([3, 900, 97], 0.001).label == 1


def test_certify_is_cohen_certify():
    counts0 = np.array([2, 95, 3])
    counts = np.array([500, 9000, 500])
    cert = certify_from_counts(counts0, counts, 0.001, 0.25)
    pa = ref_cp_lower(9000, 10000, 0.001)
    assert cert.label == 1
    assert cert.pa_lower == pytest.approx(pa, abs=1e-10)
    assert cert.pb_upper == pytest.approx(1 - pa, abs=1e-10)
    assert cert.radius == pytest.approx(0.25 * sps.norm.ppf(pa), abs=1e-9)
    assert cert.level == 0.001


def test_certify_takes_the_class_from_counts0_and_abstains_below_half():
    # counts0 picks class 0 although class 1 dominates counts: pA_lower of class 0 is tiny
    cert = certify_from_counts([60, 40], [100, 900], 0.001, 0.5)
    assert cert.label == ABSTAIN and cert.radius == 0.0
    assert cert.pa_lower < 0.5


@pytest.mark.parametrize("seed", range(8))
def test_t_certify_is_algorithm_2(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(int(rng.integers(2, 12))))
    probs[0] += 1.0
    probs /= probs.sum()
    counts0, counts = rng.multinomial(100, probs), rng.multinomial(5000, probs)
    sigma, alpha = 0.5, 0.01
    paper = t_certify_from_counts(counts0, counts, alpha, sigma, selection="paper", pb_bound="sum")
    assert paper.radius == pytest.approx(ref_t_certify_radius(counts0, counts, alpha, sigma, PAPER_GRID, pb_bound="sum"), abs=1e-8)
    assert paper.level == pytest.approx(1.9 * alpha)
    paper_max = t_certify_from_counts(counts0, counts, alpha, sigma, selection="paper")
    assert paper_max.radius == pytest.approx(ref_t_certify_radius(counts0, counts, alpha, sigma, PAPER_GRID), abs=1e-8)
    assert paper_max.radius >= paper.radius - 1e-12  # the max-count bound is never looser
    corrected = t_certify_from_counts(counts0, counts, alpha, sigma)
    corrected_sum = t_certify_from_counts(counts0, counts, alpha, sigma, pb_bound="sum")
    assert corrected_sum.radius == pytest.approx(ref_t_certify_radius(counts0, counts, alpha / 1.9, sigma, PAPER_GRID, pb_bound="sum"),
                                                 abs=1e-8)
    assert corrected.level == alpha
    assert corrected.radius == pytest.approx(ref_t_certify_radius(counts0, counts, alpha / 1.9, sigma, PAPER_GRID), abs=1e-8)
    assert corrected.alpha_prime <= alpha / 1.9 + 1e-15
    relaxed = t_certify_from_counts(counts0, counts, alpha, sigma, abstain="runner_up")
    assert relaxed.radius == pytest.approx(ref_t_certify_radius(counts0, counts, alpha / 1.9, sigma, PAPER_GRID, "runner_up"), abs=1e-8)


def test_max_count_bound_is_tighter_where_the_runner_up_mass_is_spread():
    # 1000 classes, the top one with 60% and the rest spread evenly over the other 999
    counts = np.full(1000, 40)
    counts[0] = 100_000 - 40 * 999
    counts0 = np.eye(1000, dtype=int)[0] * 100
    by_max = t_certify_from_counts(counts0, counts, 0.001, 0.5)
    by_sum = t_certify_from_counts(counts0, counts, 0.001, 0.5, pb_bound="sum")
    assert by_max.label == by_sum.label == 0
    assert by_max.pb_upper < by_sum.pb_upper and by_max.radius > by_sum.radius + 1e-3


def test_grid_level_is_the_union_bound():
    assert grid_level(PAPER_GRID) == pytest.approx(1.9)
    assert grid_level([1.0]) == 1.0
    assert grid_level([0.5]) == 1.0
    assert grid_level([0.2, 0.5]) == pytest.approx(1.3)


def test_t_certify_with_certify_split_only_is_certify():
    counts0, counts = [1, 90, 9], [300, 8000, 1700]
    cert = certify_from_counts(counts0, counts, 0.001, 1.0)
    for selection in ("paper", "corrected"):
        t_cert = t_certify_from_counts(counts0, counts, 0.001, 1.0, grid=[1.0], selection=selection)
        assert t_cert.radius == pytest.approx(cert.radius, abs=1e-12)
        assert t_cert.label == cert.label


def test_runner_up_rule_certifies_a_top_class_below_half():
    counts0 = [45, 20, 20, 15]
    counts = [45_000, 20_000, 20_000, 15_000]
    half = t_certify_from_counts(counts0, counts, 0.001, 1.0)
    relaxed = t_certify_from_counts(counts0, counts, 0.001, 1.0, abstain="runner_up")
    assert half.label == ABSTAIN
    assert relaxed.label == 0
    assert relaxed.pa_lower < 0.5 and relaxed.pa_lower > relaxed.pb_upper
    assert relaxed.radius == pytest.approx(0.5 * (sps.norm.ppf(relaxed.pa_lower) - sps.norm.ppf(relaxed.pb_upper)))


def test_first_stage_selection_uses_a_single_split_chosen_from_counts0():
    counts0 = [70, 30, 0, 0]
    counts = [7000, 3000, 0, 0]
    cert = t_certify_from_counts(counts0, counts, 0.001, 1.0, selection="first_stage")
    assert cert.level == 0.001
    # the split is a grid point at full alpha; counts0 scaled to n equals counts here, so the
    # plan is the best split of the paper grid
    assert any(cert.alpha_prime == pytest.approx(g * 0.001) for g in PAPER_GRID)
    paper = t_certify_from_counts(counts0, counts, 0.001, 1.0, selection="paper")
    assert cert.radius == pytest.approx(paper.radius)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 300), min_size=2, max_size=8),
    st.lists(st.integers(0, 3000), min_size=2, max_size=8),
    st.sampled_from([1e-4, 1e-3, 0.01, 0.1]),
    st.sampled_from([0.12, 0.25, 0.5, 1.0]),
)
def test_paper_t_certify_is_never_below_certify(c0, c, alpha, sigma):
    size = min(len(c0), len(c))
    counts0, counts = np.array(c0[:size]) + np.eye(size, dtype=int)[0], np.array(c[:size]) + 1
    cert = certify_from_counts(counts0, counts, alpha, sigma)
    t_cert = t_certify_from_counts(counts0, counts, alpha, sigma, selection="paper")
    assert t_cert.radius >= cert.radius - 1e-12
    if cert.label != ABSTAIN:
        assert t_cert.label == cert.label
    # the corrected mode is never below CERTIFY run at the corrected level
    corrected = t_certify_from_counts(counts0, counts, alpha, sigma)
    assert corrected.radius >= certify_from_counts(counts0, counts, alpha / 1.9, sigma).radius - 1e-12


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: certify_from_counts([5, 5], [50, 50], 0.001, 0.0), "sigma"),
        (lambda: certify_from_counts([5, 5], [50, 50], 0.001, -0.5), "sigma"),
        (lambda: certify_from_counts([5, 5], [50, 50], 1.5, 0.5), "alpha"),
        (lambda: t_certify_from_counts([5, 5], [50, 50], 0.0, 0.5), "alpha"),
        (lambda: certify_from_counts([5, 5, 0], [50, 50], 0.001, 0.5), "same classes"),
        (lambda: certify_from_counts([[5, 5]], [50, 50], 0.001, 0.5), "1-d"),
        (lambda: certify_from_counts([5, -1], [50, 50], 0.001, 0.5), "negative"),
        (lambda: certify_from_counts([0, 0], [50, 50], 0.001, 0.5), "at least one sample"),
        (lambda: predict_from_counts([7], 0.01), "at least 2 classes"),
        (lambda: t_certify_from_counts([5, 5], [50, 50], 0.01, 0.5, grid=[0.0, 0.5]), "grid"),
        (lambda: t_certify_from_counts([5, 5], [50, 50], 0.01, 0.5, selection="best"), "selection"),
        (lambda: t_certify_from_counts([5, 5], [50, 50], 0.01, 0.5, abstain="never"), "abstain"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_statistics_do_not_import_torch():
    code = "import sys, smoothcert, smoothcert.statistics.bounds, smoothcert.statistics.certificates; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
