"""Coverage by simulation: with counts drawn from a multinomial with known class probabilities,
the rate of wrong certificates (a label other than the true top class, or a radius above the tight
radius of eq. 2 at the true probabilities) must stay within binomial noise of the level each mode
claims."""

import numpy as np
import pytest
from scipy import special
from scipy.stats import binom

from smoothcert import ABSTAIN, certify_from_counts, predict_from_counts, t_certify_from_counts

ALPHA = 0.05
SIGMA = 1.0


def _spread(head, classes):
    rest = (1 - sum(head)) / (classes - len(head))
    return list(head) + [rest] * (classes - len(head))


PROBABILITIES = {
    "binary": [0.7, 0.3],
    "binary near-tie": [0.52, 0.48],
    "three, top at 1/2": [0.5, 0.25, 0.25],
    "three, near-tie below 1/2": [0.45, 0.44, 0.11],
    "four, top below 1/2": [0.4, 0.2, 0.2, 0.2],
    "ten": _spread([0.6, 0.3], 10),
    "1000, top below 1/2": _spread([0.35, 0.3], 1000),
}

MODES = {
    "certify": (ALPHA, lambda c0, c: certify_from_counts(c0, c, ALPHA, SIGMA)),
    "t-certify corrected": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA)),
    "t-certify corrected runner-up": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, abstain="runner_up")),
    "t-certify first-stage": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="first_stage")),
    "t-certify first-stage runner-up": (
        ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="first_stage", abstain="runner_up")),
    "t-certify paper": (1.9 * ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="paper")),
}


def wrong_rates(probs, trials, n0, n, seed):
    """Rate of wrong certificates per mode, and of wrong PREDICT labels, on shared draws."""
    probs = np.asarray(probs)
    order = np.argsort(probs)[::-1]
    top = int(order[0])
    tight = SIGMA / 2 * (special.ndtri(probs[order[0]]) - special.ndtri(probs[order[1]]))
    rng = np.random.default_rng(seed)
    wrong = dict.fromkeys([*MODES, "predict"], 0)
    for _ in range(trials):
        counts0, counts = rng.multinomial(n0, probs), rng.multinomial(n, probs)
        for name, (_, run) in MODES.items():
            cert = run(counts0, counts)
            wrong[name] += cert.label != ABSTAIN and (cert.label != top or cert.radius > tight)
        wrong["predict"] += predict_from_counts(counts, ALPHA).label not in (ABSTAIN, top)
    return {name: count / trials for name, count in wrong.items()}


def within_noise(rate, level, trials):
    """The rate is below the level's 1 - 1e-4 binomial quantile."""
    return rate <= binom.isf(1e-4, trials, level) / trials


def check_rates(probs, trials, n0, n, seed):
    rates = wrong_rates(probs, trials, n0, n, seed)
    levels = {name: level for name, (level, _) in MODES.items()} | {"predict": ALPHA}
    for name, rate in rates.items():
        assert within_noise(rate, levels[name], trials), f"{name}: wrong-certificate rate {rate} exceeds level {levels[name]}"
    return rates


@pytest.mark.parametrize("name", list(PROBABILITIES))
def test_wrong_certificates_stay_within_the_claimed_level(name):
    check_rates(PROBABILITIES[name], trials=400, n0=50, n=500, seed=1)


def test_simulation_detects_failures_where_the_bound_is_tight():
    # Two classes: CERTIFY's radius sigma * Phi^-1(pA_lower) is tight exactly when pA_lower
    # exceeds pA, which happens at a rate close to alpha; a simulation that cannot see it
    # would prove nothing.
    rates = check_rates(PROBABILITIES["binary"], trials=2000, n0=50, n=500, seed=2)
    assert rates["certify"] > ALPHA / 3
    # an anti-conservative bound is caught: certifying at 3 alpha fails the check at alpha
    rng = np.random.default_rng(3)
    loose_wrong = 0
    for _ in range(2000):
        counts0, counts = rng.multinomial(50, [0.7, 0.3]), rng.multinomial(500, [0.7, 0.3])
        cert = certify_from_counts(counts0, counts, 3 * ALPHA, SIGMA)
        loose_wrong += cert.label != ABSTAIN and cert.radius > SIGMA * special.ndtri(0.7)
    assert not within_noise(loose_wrong / 2000, ALPHA, 2000)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROBABILITIES))
def test_wrong_certificates_stay_within_the_claimed_level_long(name):
    check_rates(PROBABILITIES[name], trials=10_000, n0=100, n=2000, seed=4)
