import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from reference import ref_cp_lower, ref_cp_upper, ref_pb_upper
from smoothcert.statistics import bounds

TOL = 1e-10


def _random_cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.choice([1, 2, 10, 100, 1000, 100_000]))
        k = int(rng.integers(0, n + 1))
        alpha = float(10 ** rng.uniform(-12, np.log10(0.999)))
        yield k, n, alpha


@pytest.mark.parametrize("k,n,alpha", list(_random_cases(0, 60)))
def test_cp_bounds_match_root_finding_on_the_binomial(k, n, alpha):
    assert bounds.cp_lower(k, n, alpha) == pytest.approx(ref_cp_lower(k, n, alpha), abs=TOL)
    assert bounds.cp_upper(k, n, alpha) == pytest.approx(ref_cp_upper(k, n, alpha), abs=TOL)


@pytest.mark.parametrize("n", [1, 7, 1000, 100_000])
@pytest.mark.parametrize("alpha", [1e-12, 1e-3, 0.5, 0.999])
def test_cp_edge_cases_have_closed_forms(n, alpha):
    # P(Bin(n, p) >= n) = p^n and P(Bin(n, p) <= 0) = (1 - p)^n.
    assert bounds.cp_lower(0, n, alpha) == 0.0
    assert bounds.cp_upper(n, n, alpha) == 1.0
    assert bounds.cp_lower(n, n, alpha) == pytest.approx(alpha ** (1 / n), abs=TOL)
    assert bounds.cp_upper(0, n, alpha) == pytest.approx(1 - alpha ** (1 / n), abs=TOL)


def test_cp_bounds_are_vectorized():
    k = np.array([[0, 5], [10, 20]])
    alpha = np.array([0.01, 0.2])
    lower = bounds.cp_lower(k, 20, alpha)
    assert lower.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert lower[i, j] == pytest.approx(ref_cp_lower(int(k[i, j]), 20, float(alpha[j])), abs=TOL)


@pytest.mark.parametrize("seed", range(12))
def test_pb_upper_matches_root_finding_on_the_sum(seed):
    rng = np.random.default_rng(seed)
    classes = int(rng.choice([2, 3, 10, 100]))
    n = int(rng.choice([10, 100, 1000, 100_000]))
    probs = rng.dirichlet(np.full(classes, float(rng.choice([0.1, 1.0, 10.0]))))
    counts = rng.multinomial(n, probs)
    others = np.delete(counts, np.argmax(counts))
    alpha = float(10 ** rng.uniform(-8, -0.5))
    got = float(bounds.pb_upper(others, n, alpha))
    want = ref_pb_upper(others, n, alpha)
    assert got == pytest.approx(want, abs=TOL)
    # never below the root: the sum at the returned point is at most alpha
    assert sum(sps.binom.cdf(int(v), n, got) for v in others) <= alpha * (1 + 1e-9)


@pytest.mark.parametrize("others,n,alpha", [
    ([38, 58, 43, 59, 4, 12, 35], 283, 0.05),  # the search stops where S(p) - alpha is exactly 0
    ([22, 5], 70, 0.8125),
    ([8, 11, 0, 2, 30, 36, 41, 51], 184, 0.8125),
    *[(list(map(int, np.random.default_rng(s).integers(0, 60, 1 + s % 11))), 400, a) for s in range(30) for a in (0.001, 0.25)],
])
def test_pb_upper_is_within_its_tolerance_above_the_root(others, n, alpha):
    got, want = float(bounds.pb_upper(others, n, alpha)), ref_pb_upper(others, n, alpha)
    assert want - 1e-15 <= got <= want + bounds.PB_UPPER_XATOL


def test_pb_upper_with_1000_classes_mostly_zero():
    rng = np.random.default_rng(7)
    others = np.zeros(999, dtype=int)
    others[:5] = [3000, 2500, 40, 3, 1]
    n = 100_000
    for alpha in [1e-3, 1e-9, 0.3]:
        assert float(bounds.pb_upper(rng.permutation(others), n, alpha)) == pytest.approx(ref_pb_upper(others, n, alpha), abs=TOL)


@pytest.mark.parametrize("m,n,alpha", [(999, 100_000, 1e-3), (9, 100, 0.05), (1, 10, 1e-6), (999, 100, 1e-12)])
def test_pb_upper_all_zero_others_has_a_closed_form(m, n, alpha):
    # m (1 - p)^n = alpha
    assert float(bounds.pb_upper(np.zeros(m, dtype=int), n, alpha)) == pytest.approx(1 - (alpha / m) ** (1 / n), abs=TOL)


def test_pb_upper_edge_cases():
    # one other class: the Clopper-Pearson upper bound
    assert float(bounds.pb_upper([37], 100, 0.01)) == pytest.approx(float(bounds.cp_upper(37, 100, 0.01)), abs=TOL)
    # some other class took every sample: nothing below 1 is an upper bound
    assert float(bounds.pb_upper([0, 50, 0], 50, 0.01)) == 1.0
    # alpha near 1 and near 0
    for alpha in [0.999, 1e-12]:
        assert float(bounds.pb_upper([5, 5, 0], 20, alpha)) == pytest.approx(ref_pb_upper([5, 5, 0], 20, alpha), abs=TOL)


def test_pb_upper_broadcasts_rows_and_levels():
    rows = np.array([[3, 1, 0], [10, 10, 2], [0, 0, 0]])
    alphas = np.array([[0.001], [0.01], [0.1]])
    got = bounds.pb_upper(rows, 50, alphas)
    assert got.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert got[i, j] == pytest.approx(ref_pb_upper(rows[j], 50, float(alphas[i, 0])), abs=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_pb_upper_max_is_clopper_pearson_on_the_largest_count_and_never_looser_than_eq_14(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 40))
    n = int(rng.integers(m + 1, 5000))
    others = rng.multinomial(int(rng.integers(0, n // 2 + 1)), np.ones(m) / m)
    alpha = float(10 ** rng.uniform(-6, -1))
    bound = float(bounds.pb_upper_max(others, n, alpha))
    assert bound == pytest.approx(ref_cp_upper(int(others.max()), n, alpha), abs=1e-12)
    assert bound <= float(bounds.pb_upper(others, n, alpha)) + 1e-15


def test_pb_upper_max_on_1000_zero_counts():
    # 999 other classes without a sample: eq. 14 needs 999 tails to reach beta, the max-count
    # bound one
    others, n, beta = np.zeros(999, dtype=int), 100_000, 5e-4
    by_max, by_sum = float(bounds.pb_upper_max(others, n, beta)), float(bounds.pb_upper(others, n, beta))
    assert by_max == pytest.approx(-np.log(beta) / n, rel=1e-3)  # 7.6e-5: (1 - p)^n = beta
    assert by_sum == pytest.approx(-np.log(beta / 999) / n, rel=1e-3)  # 1.45e-4
    assert by_max < 0.53 * by_sum


def test_radii_match_scipy_normal_quantiles():
    pa, pb, sigma = np.array([0.6, 0.99, 0.51]), np.array([0.3, 0.001, 0.49]), 0.5
    want = sigma / 2 * (sps.norm.ppf(pa) - sps.norm.ppf(pb))
    np.testing.assert_allclose(bounds.radius(pa, pb, sigma), want, rtol=1e-12)
    np.testing.assert_allclose(bounds.cohen_radius(pa, sigma), sigma * sps.norm.ppf(pa), rtol=1e-12)
    np.testing.assert_allclose(bounds.radius(pa, 1 - pa, sigma), bounds.cohen_radius(pa, sigma), rtol=1e-12)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: bounds.cp_lower(3, 10, 0.0), "alpha"),
        (lambda: bounds.cp_lower(3, 10, 1.0), "alpha"),
        (lambda: bounds.cp_upper(11, 10, 0.1), "between 0 and n"),
        (lambda: bounds.cp_upper(-1, 10, 0.1), "between 0 and n"),
        (lambda: bounds.cp_lower(1, 0, 0.1), "n must be a positive"),
        (lambda: bounds.cp_lower(1.5, 10, 0.1), "whole numbers"),
        (lambda: bounds.pb_upper([], 10, 0.1), "at least one class"),
        (lambda: bounds.pb_upper([6, 6], 10, 0.1), "more than n"),
        (lambda: bounds.pb_upper([-1, 2], 10, 0.1), "between 0 and n"),
        (lambda: bounds.pb_upper_max([], 10, 0.1), "at least one class"),
        (lambda: bounds.pb_upper_max([6, 6], 10, 0.1), "more than n"),
        (lambda: bounds.pb_upper_max([2, 3], 10, 1.5), "alpha"),
        (lambda: bounds.radius(0.6, 0.3, 0.0), "sigma"),
        (lambda: bounds.cohen_radius(0.6, -1.0), "sigma"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


counts_and_n = st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))
levels = st.floats(1e-9, 0.9)


@settings(max_examples=150, deadline=None)
@given(counts_and_n, st.floats(1e-9, 0.5))
def test_estimate_lies_between_the_bounds(kn, alpha):
    # one-sided bounds at a level up to 1/2 (above it the lower bound may pass k/n)
    k, n = kn
    assert bounds.cp_lower(k, n, alpha) <= k / n <= bounds.cp_upper(k, n, alpha)


@settings(max_examples=150, deadline=None)
@given(counts_and_n, levels, levels)
def test_bounds_are_monotone_in_k_and_alpha(kn, a1, a2):
    k, n = kn
    lo_a, hi_a = sorted([a1, a2])
    # larger alpha: narrower interval
    assert bounds.cp_lower(k, n, lo_a) <= bounds.cp_lower(k, n, hi_a)
    assert bounds.cp_upper(k, n, lo_a) >= bounds.cp_upper(k, n, hi_a)
    if k < n:
        assert bounds.cp_lower(k, n, a1) <= bounds.cp_lower(k + 1, n, a1)
        assert bounds.cp_upper(k, n, a1) <= bounds.cp_upper(k + 1, n, a1)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=12), levels, levels, st.integers(0, 11))
def test_pb_upper_is_monotone_and_above_each_class_bound(others, a1, a2, which):
    n = sum(others) + 5
    lo_a, hi_a = sorted([a1, a2])
    bound = float(bounds.pb_upper(others, n, hi_a))
    assert float(bounds.pb_upper(others, n, lo_a)) >= bound - 1e-12
    # at least as large as the Clopper-Pearson bound of the largest other class
    assert bound >= float(bounds.cp_upper(max(others), n, hi_a)) - 1e-12
    # a larger count can only raise it
    bumped = list(others)
    bumped[which % len(others)] += 1
    assert float(bounds.pb_upper(bumped, n, hi_a)) >= bound - 1e-12
