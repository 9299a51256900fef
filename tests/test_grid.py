"""Grid certification (smoothcert.statistics.grid): valid at level alpha whatever the stopping
time, checked by simulation on known probabilities with a look after every block, against a
control that a naive rule fails; the one-sided test against scipy; bad input."""

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import ndtr

from smoothcert.statistics import bounds
from smoothcert.statistics.grid import GridRule, band_log_martingale, certify_sequentially, futile, grid_log_martingale, level_log_martingale

SIGMA, RADII = 0.5, (0.25, 0.5)


def draws(p, seed):
    rng = np.random.default_rng(seed)
    return lambda m: int(rng.binomial(m, p))


def wrong_rate(certify, p, trials):
    """The share of certificates whose radius exceeds the true one, sigma * Phi^-1(p)."""
    true_radius = SIGMA * stats.norm.ppf(p)
    wrong = sum(certify(draws(p, seed)).radius > true_radius + 1e-12 for seed in range(trials))
    return wrong / trials


@pytest.mark.parametrize("p", [float(ndtr(0.5)), float(ndtr(1.0)), 0.9])
def test_wrong_certificates_stay_below_alpha_with_a_look_after_every_block(p):
    """pA exactly at a grid threshold (Phi(0.25 / 0.5), Phi(0.5 / 0.5): the level just below the
    true radius is the best valid claim), and one between thresholds; alpha = 0.1, a look every
    100 samples up to 2,000. The rate stays below alpha with room for the simulation's noise."""
    alpha, trials = 0.1, 1500
    rate = wrong_rate(lambda draw: certify_sequentially(0, draw, 2000, alpha, SIGMA, RADII)[0], p, trials)
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)


def naive(draw, n=2000, alpha=0.1, block=100):
    """Fixed-n Clopper-Pearson re-tested after every block, stopping at the first grid level it
    passes: optional stopping, not a valid rule."""
    count = used = 0
    thresholds = ndtr(np.array(RADII) / SIGMA)
    while used < n:
        count, used = count + draw(block), used + block
        pa = float(bounds.cp_lower(count, used, alpha))
        if pa > thresholds[0]:
            from smoothcert.statistics.certificates import Certificate
            return Certificate(0, SIGMA * float(stats.norm.ppf(pa)), pa, 1 - pa, alpha, alpha)
    from smoothcert.statistics.certificates import Certificate
    return Certificate(-1, 0.0, 0.0, 1.0, alpha, alpha)


def test_the_control_fails_where_the_rule_holds():
    """The same simulation detects optional stopping: the naive rule's wrong certificates at the
    threshold pA exceed alpha by far."""
    p, alpha, trials = float(ndtr(0.5)), 0.1, 1500
    assert wrong_rate(naive, p, trials) > alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)


@pytest.mark.parametrize("k,t,p", [(100, 100, 0.9), (80, 100, 0.6), (300, 400, 0.7), (5, 10, 0.3)])
def test_the_one_sided_martingale_is_its_integral(k, t, p):
    """log M of the one-sided test against the mixture integral over q > p, by quadrature."""
    a, b = 1.0, 0.25
    prior = stats.beta(a, b)
    ratio = lambda q: np.exp(k * np.log(q / p) + (t - k) * np.log((1 - q) / (1 - p))) * prior.pdf(q)
    value = integrate.quad(ratio, p, 1, limit=400, points=[k / t] if p < k / t < 1 else None)[0] / prior.sf(p)
    assert float(level_log_martingale(k, t, p)) == pytest.approx(np.log(value), abs=1e-6)


@pytest.mark.parametrize("k,t,p,top", [(100, 100, 0.9, 0.95), (80, 100, 0.6, 0.7), (300, 400, 0.7, 0.8), (5, 10, 0.3, 0.5),
                                       (1990, 2000, 0.8, 0.9), (30, 100, 0.5, 0.7)])
def test_the_band_martingale_is_its_integral(k, t, p, top):
    """log M of the band test (q uniform on (p, top]) against quadrature, on both sides of the band
    (1990 of 2000 lies far above it, where the upper tails cancel) and below it."""
    ratio = lambda q: np.exp(k * np.log(q / p) + (t - k) * np.log((1 - q) / (1 - p))) / (top - p)
    value = integrate.quad(ratio, p, top, limit=400, points=[k / t] if p < k / t < top else None)[0]
    assert float(band_log_martingale(k, t, p, top)) == pytest.approx(np.log(value), abs=1e-6)
    both = np.log((np.exp(level_log_martingale(k, t, p)) + value) / 2)
    assert float(grid_log_martingale(k, t, p, top)) == pytest.approx(both, abs=1e-6)


def test_clear_inputs_stop_early_and_certify_their_level():
    cert, used = certify_sequentially(3, draws(0.97, 0), 100_000, 0.001, SIGMA, [0.25 * i for i in range(1, 8)])
    assert cert.label == 3 and cert.radius == 0.75 and used < 10_000  # Phi(0.75 / 0.5) < 0.97 < Phi(1.0 / 0.5)


def test_an_input_near_one_half_stops_once_reaching_the_last_looks_need_is_futile():
    """51 of every 100 samples: pA > 1/2 cannot be decided early, and the last look (at 1.25 n)
    would need 689 of 1,250; the predictive probability of that falls below rule_out well before
    n, so the input stops and abstains, as Clopper-Pearson at n would (510 of 1,000 is below 1/2)."""
    rule = GridRule(1000, 0.001, SIGMA, (0.25,))
    assert rule.last_look == 1250 and rule.final_needed[0] == 689
    cert, used = certify_sequentially(1, lambda m: m // 2 + 1, 1000, 0.001, SIGMA, [0.25])
    assert used < 1000 and cert.label == -1 and cert.radius == 0.0
    assert float(bounds.cp_lower(510, 1000, 0.0002)) < 0.5


def test_an_input_near_the_last_looks_need_samples_to_n_and_gets_clopper_pearsons_radius():
    """56 of every 100 samples: within reach of the 689 of 1,250 the last look needs, so the input
    samples on past n to the last look, where the Clopper-Pearson bound at its share of alpha
    certifies a radius off the grid."""
    cert, used = certify_sequentially(1, lambda m: 56 * m // 100, 1000, 0.001, SIGMA, [0.25])
    expected = float(bounds.cp_lower(700, 1250, 0.0002))
    assert used == 1250 and cert.label == 1 and cert.pa_lower == pytest.approx(expected) and 0 < cert.radius < 0.25


def test_futility_needs_the_final_count_to_be_unlikely():
    """The stopping rule on its own, 557 of 1,000 needed after 500 samples: 250 of them make 500
    the expected final count, 57 short with a predictive spread of 15.8 (futile at 0.05); 270
    make 540, 17 short (not futile)."""
    assert futile(250, 500, 1000, 557, 0.05) and not futile(270, 500, 1000, 557, 0.05) and not futile(280, 500, 1000, 557, 0.05)
    assert not futile(270, 500, 1000, 1001, 0.05)  # a level the last look can never reach is left to the other test


def test_an_input_whose_next_level_is_out_of_reach_stops_at_its_grid_radius():
    """60 of every 100 samples: pA > 1/2 is certified by the sequence, radius 1.0 (pA > 0.977) can
    never be; the rule stops early, certified at the grid radius 0 (not abstaining)."""
    cert, used = certify_sequentially(4, lambda m: 60 * m // 100, 100_000, 0.001, SIGMA, [1.0])
    assert cert.label == 4 and cert.radius == 0.0 and used < 5_000


@pytest.mark.parametrize("radii,message", [([], "non-empty"), ([0.5, 0.25], "increasing"), ([-0.25, 0.5], "non-negative"),
                                           ([0.25, float("nan")], "finite")])
def test_a_bad_grid_is_refused(radii, message):
    with pytest.raises(ValueError, match="radii must be a non-empty increasing list of finite non-negative radii"):
        certify_sequentially(0, lambda m: m, 1000, 0.001, SIGMA, radii)


@pytest.mark.parametrize("value", [-1, 101, 2.5, None, True])
def test_a_draw_outside_its_block_is_refused(value):
    with pytest.raises(ValueError, match="draw\\(100\\) must return how many of the 100 new samples went to class 0"):
        certify_sequentially(0, lambda m: value, 1000, 0.001, SIGMA, [0.25])


def test_radii_beyond_reach_are_warned_about():
    with pytest.warns(RuntimeWarning, match="the largest radius 1250 samples can certify"):
        GridRule(1000, 0.001, SIGMA, (0.25, 5.0))


def test_the_package_root_gives_it_without_torch():
    """A JAX or ONNX user certifies through a draw function: the name loads without torch."""
    import subprocess
    import sys

    code = ("import sys, smoothcert; radius = smoothcert.certify_sequentially(0, lambda m: m, 10_000, 0.001, 0.5, [0.25, 0.5])[0].radius; "
            "assert 'torch' not in sys.modules; print(radius)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 0.5


def test_a_budget_below_n_is_refused_where_it_enters():
    with pytest.raises(ValueError, match="budget must be a finite number of at least 1, got 0.5"):
        certify_sequentially(0, lambda m: m, 1000, 0.001, SIGMA, (0.25,), budget=0.5)
