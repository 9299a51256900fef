"""Coverage by simulation: with counts drawn from a multinomial with known class probabilities,
the rate of wrong certificates (a label other than the true top class, or a radius above the tight
radius of eq. 2 at the true probabilities) must stay within binomial noise of the level each mode
claims."""

import numpy as np
import pytest
import torch
from scipy import special
from scipy.stats import binom

from smoothcert import ABSTAIN, certify_from_counts, predict_from_counts, t_certify_from_counts
from smoothcert.statistics.sequential import (CheckpointPlan, SequenceTest, checkpoint_decision, checkpoint_plan, mixture_log_martingale,
                                   sequence_decision)

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
    "1000, runner-up mass over 10": _spread([0.55] + [0.044] * 10, 1000),
    "1000, runner-up mass over 999": _spread([0.55], 1000),
}

MODES = {
    "certify": (ALPHA, lambda c0, c: certify_from_counts(c0, c, ALPHA, SIGMA)),
    "t-certify corrected": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA)),
    "t-certify corrected runner-up": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, abstain="runner_up")),
    "t-certify first-stage": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="first_stage")),
    "t-certify first-stage runner-up": (
        ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="first_stage", abstain="runner_up")),
    "t-certify paper": (1.9 * ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="paper")),
    "t-certify corrected sum": (ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, pb_bound="sum")),
    "t-certify paper sum (the paper's algorithm)": (
        1.9 * ALPHA, lambda c0, c: t_certify_from_counts(c0, c, ALPHA, SIGMA, selection="paper", pb_bound="sum")),
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


def checkpoint_wrong_rate(p_top, target, trials, n, alpha, per_stage_alpha=None, seed=5):
    """Two classes, P(top) = p_top: rate of certificates with a radius above the tight radius
    sigma * Phi^-1(p_top), with early stopping at the plan's checkpoints. ``per_stage_alpha``
    replaces the plan's levels by one level at every checkpoint (the naive, invalid scheme)."""
    plan = checkpoint_plan(n, alpha, stages=5)
    if per_stage_alpha is not None:
        plan = CheckpointPlan(plan.checkpoints, (per_stage_alpha,) * len(plan.checkpoints))
    rng = np.random.default_rng(seed)
    tight = SIGMA * special.ndtri(p_top)
    wrong, used = 0, 0
    for _ in range(trials):
        top_count, done = 0, 0
        for stage, checkpoint in enumerate(plan.checkpoints):
            top_count += rng.binomial(checkpoint - done, p_top)
            done = checkpoint
            cert = checkpoint_decision(plan, stage, 0, top_count, SIGMA, target, alpha)
            if cert is not None:
                break
        used += done
        wrong += cert.label == 0 and cert.radius > tight
    return wrong / trials, used / trials


def sequence_wrong_rate(p_top, target, trials, n, alpha, seed=6, block=100):
    """The same for the ``"sequence"`` rule, looking after every ``block`` samples."""
    test = SequenceTest(n, alpha)
    rng = np.random.default_rng(seed)
    tight = SIGMA * special.ndtri(p_top)
    wrong, used = 0, 0
    for _ in range(trials):
        top_count, done, cert = 0, 0, None
        while cert is None:
            step = min(block, n - done)
            top_count, done = top_count + rng.binomial(step, p_top), done + step
            cert = sequence_decision(test, 0, top_count, done, SIGMA, target)
        used += done
        wrong += cert.label == 0 and cert.radius > tight
    return wrong / trials, used / trials


def test_checkpoint_early_stopping_holds_its_level_and_the_naive_scheme_does_not():
    # The target sits just below the tight radius: the rule stops as soon as a bound crosses it,
    # the optional stopping that breaks a fixed-n bound; a radius above the tight one is wrong.
    p_top, n, trials = 0.8, 2000, 3000
    target = SIGMA * special.ndtri(p_top) * 0.97
    rate, _ = checkpoint_wrong_rate(p_top, target, trials, n, ALPHA)
    assert within_noise(rate, ALPHA, trials)
    # Re-testing at the full alpha at every checkpoint is optional stopping without correction:
    # its error exceeds alpha, and this simulation sees it.
    naive, _ = checkpoint_wrong_rate(p_top, target, trials, n, ALPHA, per_stage_alpha=ALPHA)
    assert not within_noise(naive, ALPHA, trials)


def test_checkpoint_early_stopping_saves_samples_on_clear_cases():
    rate, used = checkpoint_wrong_rate(0.99, 0.5, 500, 2000, ALPHA)
    assert rate == 0 and used <= 300  # decided at the first checkpoint or two


@pytest.mark.parametrize("p_top", [0.6, 0.8, 0.95])
def test_sequence_early_stopping_holds_its_level_under_continuous_monitoring(p_top):
    # a look after every block, stopping as soon as the bound crosses a target just below the
    # tight radius
    trials = 1000
    rate, _ = sequence_wrong_rate(p_top, SIGMA * special.ndtri(p_top) * 0.97, trials, 2000, ALPHA)
    assert within_noise(rate, ALPHA, trials)


def test_sequence_early_stopping_holds_its_level_when_it_gives_up():
    # a target far above the tight radius: the rule mostly stops because the target is out of
    # reach, late in the run; any certificate at a radius above the tight one is wrong
    p_top, trials = 0.6, 1000
    rate, used = sequence_wrong_rate(p_top, SIGMA * special.ndtri(p_top) * 2, trials, 500, ALPHA)
    assert within_noise(rate, ALPHA, trials) and used < 500


def test_sequence_bound_never_exceeds_the_observed_share():
    # The reported pA_lower comes from the sequence (an interval around k / t) or from
    # Clopper-Pearson at n, both below the observed share; a certificate at the target needs a
    # share above Phi(R / sigma). Swept over every state of a run, early and late, far and near.
    test, target = SequenceTest(1000, 0.01), 0.5
    threshold = special.ndtr(target / SIGMA)
    for used in range(100, 1001, 100):
        for count in range(0, used + 1, 7):
            cert = sequence_decision(test, 0, count, used, SIGMA, target)
            if cert is not None:
                assert cert.pa_lower <= count / used + 1e-12
                assert cert.radius < target or count / used > threshold


def test_continuous_monitoring_breaks_a_fixed_n_bound_but_not_the_sequence():
    # After every single sample, for 2,000 samples: the rate at which the true p ever leaves the
    # confidence sequence stays below its level, where the fixed-n Clopper-Pearson bound at the
    # same level, checked as often, is crossed far more often.
    level, p, horizon, trials = 0.05, 0.7, 2000, 2000
    rng = np.random.default_rng(7)
    k = np.cumsum(rng.random((trials, horizon)) < p, axis=1)
    t = np.arange(1, horizon + 1)
    log_m = mixture_log_martingale(k, t, p)
    sequence_misses = (log_m >= -np.log(level)).any(axis=1).mean()
    assert within_noise(sequence_misses, level, trials)
    fixed_n_misses = (binom.sf(k - 1, t, p) <= level).any(axis=1).mean()  # cp_lower(k, t, level) > p
    assert fixed_n_misses > 3 * level


def test_sequence_early_stopping_saves_samples_on_clear_cases():
    rate, used = sequence_wrong_rate(0.999, 0.5, 300, 10_000, 0.001)
    assert rate == 0 and used == 100  # decided after the first block
    _, used_checkpoints = checkpoint_wrong_rate(0.999, 0.5, 300, 10_000, 0.001)
    assert used_checkpoints >= 700


@pytest.mark.parametrize("n", [1, 10, 99, 150])
def test_a_checkpoint_plan_never_looks_at_zero_samples(n):
    """Fewer samples than 2^(stages - 1) blocks: the plan's looks are all positive, end at n, and
    early stopping runs on it (it crashed on a look at zero samples)."""
    from smoothcert.smoothing.classifier import SmoothedClassifier

    plan = checkpoint_plan(n, 0.001, stages=5)
    assert plan.checkpoints[0] >= 1 and plan.checkpoints[-1] == n and sum(plan.levels) == pytest.approx(0.001)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    cert, used = SmoothedClassifier(model, 3, 0.5).certify_until(torch.rand(1, 2, 2), 10, n, 0.001, 0.1, early_stop="checkpoints",
                                                                 seed=0)
    assert 1 <= used <= n


def test_a_sequence_test_without_a_share_for_its_last_look_is_refused():
    with pytest.raises(ValueError, match="final_share in \\(0, 1\\)"):
        SequenceTest(1000, 0.01, final_share=0.0)
