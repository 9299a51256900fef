import numpy as np
import pytest
import torch
from scipy import stats as sps

from smoothcert import ABSTAIN, SmoothedClassifier, certify_from_counts


class Halfspace(torch.nn.Module):
    """Two-class linear classifier: class 1 iff w.x + b > 0. Its smoothed probability of class 1
    is Phi((w.x + b) / (sigma |w|)), and the smoothed classifier's exact radius is the distance
    |w.x + b| / |w| to the hyperplane."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.flatten().clone())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], dim=1)


class Buckets(torch.nn.Module):
    """Three classes by the first coordinate: below t1, between, above t2."""

    def __init__(self, t1: float, t2: float) -> None:
        super().__init__()
        self.register_buffer("cuts", torch.tensor([t1, t2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = torch.bucketize(x.flatten(1)[:, 0].contiguous(), self.cuts)
        return torch.nn.functional.one_hot(label, 3).float()


@pytest.fixture
def halfspace():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, 4, generator=gen)
    x = torch.randn(3, 4, 4, generator=gen)
    b = 0.6 * float(w.norm()) - float((w * x).sum())  # puts x at distance 0.6 from the plane
    return Halfspace(w, b), x, 0.6


@pytest.mark.parametrize("sigma", [0.25, 0.5, 1.0])
def test_certified_radius_is_below_and_close_to_the_exact_radius(halfspace, sigma):
    model, x, exact = halfspace
    smoothed = SmoothedClassifier(model, num_classes=2, sigma=sigma)
    for method in (smoothed.certify, smoothed.t_certify):
        cert = method(x, n0=100, n=100_000, alpha=0.001, batch_size=10_000, seed=1)
        assert cert.label == 1
        assert cert.radius <= exact
        # n = 100,000 pins pA to about 0.004; the radius loses at most a few percent
        assert cert.radius >= 0.95 * exact
    assert smoothed.predict(x, n=1000, alpha=0.001, seed=2).label == 1


def test_counts_follow_the_known_smoothed_probabilities():
    sigma, t1, t2 = 0.5, -0.2, 0.4
    x = torch.zeros(2, 5)
    smoothed = SmoothedClassifier(Buckets(t1, t2), num_classes=3, sigma=sigma)
    n = 60_000
    counts = smoothed.sample_counts(x, n, batch_size=7_000, seed=3)
    probs = np.diff(sps.norm.cdf([-np.inf, t1 / sigma, t2 / sigma, np.inf]))
    assert counts.sum() == n
    test = sps.chisquare(counts, n * probs)
    assert test.pvalue > 1e-4


def test_same_seed_same_certificate_and_generators_work(halfspace):
    model, x, _ = halfspace
    smoothed = SmoothedClassifier(model, num_classes=2, sigma=1.0)
    a = smoothed.sample_counts(x, 2000, batch_size=300, seed=5)
    b = smoothed.sample_counts(x, 2000, batch_size=300, seed=5)
    c = smoothed.sample_counts(x, 2000, batch_size=300, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = smoothed.sample_counts(x, 2000, batch_size=300, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a, d)
    assert smoothed.certify(x, 50, 500, 0.01, seed=9) == smoothed.certify(x, 50, 500, 0.01, seed=9)


def test_model_runs_in_eval_mode_and_its_mode_is_restored(halfspace):
    model, x, _ = halfspace
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    model.train()
    SmoothedClassifier(model, 2, 0.5).certify(x, 10, 20, 0.1, batch_size=7, seed=0)
    assert seen and not any(seen)
    assert model.training


def test_abstains_at_the_decision_boundary():
    w = torch.ones(4)
    x = torch.zeros(4)
    smoothed = SmoothedClassifier(Halfspace(w, 0.0), 2, 0.5)
    assert smoothed.certify(x, 100, 10_000, 0.001, seed=0).label == ABSTAIN
    assert smoothed.predict(x, 10_000, 0.001, seed=0).label == ABSTAIN


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda m, x: SmoothedClassifier(m, 2, 0.0), ValueError, "sigma"),
        (lambda m, x: SmoothedClassifier(m, 2, -1.0), ValueError, "sigma"),
        (lambda m, x: SmoothedClassifier(m, 1, 0.5), ValueError, "num_classes"),
        (lambda m, x: SmoothedClassifier(lambda z: z, 2, 0.5), TypeError, "torch.nn.Module"),
        (lambda m, x: SmoothedClassifier(m, 5, 0.5).certify(x, 10, 10, 0.01), ValueError, "num_classes = 5"),
        (lambda m, x: SmoothedClassifier(m, 2, 0.5).certify(x, 0, 10, 0.01), ValueError, "positive integer"),
        (lambda m, x: SmoothedClassifier(m, 2, 0.5).certify(x, 10, 0, 0.01), ValueError, "positive integer"),
        (lambda m, x: SmoothedClassifier(m, 2, 0.5).certify(x, 10, 10, 0.01, batch_size=0), ValueError, "batch_size"),
        (lambda m, x: SmoothedClassifier(m, 2, 0.5).certify(x, 10, 10, 1.0), ValueError, "alpha"),
        (lambda m, x: SmoothedClassifier(m, 2, 0.5).certify(x.long(), 10, 10, 0.01), TypeError, "floating-point"),
        (lambda m, x: SmoothedClassifier(m, 2, 0.5).predict(x, 10, 0.01, seed=1, generator=torch.Generator()),
         ValueError, "either seed or generator"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(halfspace, call, error, message):
    model, x, _ = halfspace
    with pytest.raises(error, match=message):
        call(model, x)


def test_counts_do_not_depend_on_batch_size_or_packing(halfspace):
    model, x, _ = halfspace
    smoothed = SmoothedClassifier(model, num_classes=2, sigma=1.0)
    inputs = torch.stack([x, 0.5 * x, -x])
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    packed = smoothed.count_phases(inputs, (100, 250), batch_size=450, generators=gens())
    for batch_size in (30, 100, 1000):
        alone = np.stack([smoothed.count_phases(inputs[i:i + 1], (100, 250), batch_size, [g])[0] for i, g in enumerate(gens())])
        np.testing.assert_array_equal(packed, alone)
    assert packed.sum(axis=2).tolist() == [[100, 250]] * 3
    # and certify is the same computation on one input
    cert = smoothed.certify(x, 100, 250, 0.01, batch_size=70, generator=torch.Generator().manual_seed(1))
    assert cert == certify_from_counts(packed[0, 0], packed[0, 1], 0.01, 1.0)


def test_early_stopping_through_the_classifier_stays_valid_and_stops_early(halfspace):
    # sigma = 1 puts pA at Phi(0.6) = 0.73; the target sits just below the exact radius, so the
    # rule stops as soon as a bound crosses it, and a radius above 0.6 would be a wrong certificate
    model, x, exact = halfspace
    smoothed = SmoothedClassifier(model, num_classes=2, sigma=1.0)
    alpha, trials = 0.1, 200
    wrong = 0
    for seed in range(trials):
        cert, used = smoothed.certify_until(x, n0=100, n=3000, alpha=alpha, target_radius=0.97 * exact, batch_size=400, seed=seed)
        assert used % 100 == 0 and 100 <= used <= 3000 and cert.level == alpha
        wrong += cert.label == 1 and cert.radius > exact
    assert wrong / trials <= sps.binom.isf(1e-4, trials, alpha) / trials
    # at sigma = 0.25 (pA = 0.992) a target far inside the exact radius is decided after the
    # first block of 100 samples
    smoothed = SmoothedClassifier(model, num_classes=2, sigma=0.25)
    cert, used = smoothed.certify_until(x, n0=100, n=10_000, alpha=0.001, target_radius=0.05, seed=0)
    assert cert.label == 1 and cert.radius >= 0.05 and used == 100
    # and the fixed checkpoints first look at n/16 (rounded up to a block)
    _, used = smoothed.certify_until(x, n0=100, n=10_000, alpha=0.001, target_radius=0.05, early_stop="checkpoints", seed=0)
    assert used == 700
