import math

import pytest
import torch
import torch.nn.functional as F

from smoothcert.training.objectives import adre_term, perturbed_risk, regularized_risk, runner_up, smoothed_log_probs


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, 6, generator=gen) * 3
    labels = torch.tensor([0, 5, 2, 2, 3])
    return logits, labels


def direct(logits, labels, lam, draw=None, cap=None):
    """Eq. 6-8 written out example by example with probabilities (not log space)."""
    total = 0.0
    for i in range(len(labels)):
        y = int(labels[i])
        probs = [F.softmax(logits[i, j], 0) for j in range(logits.shape[1])]
        ces = [-math.log(float(p[y])) for p in probs]
        l_per = ces[int(draw[i])] if draw is not None else sum(ces) / len(ces)
        g = sum(probs) / len(probs)
        wrong = [c for c in range(len(g)) if c != y]
        y_hat = max(wrong, key=lambda c: float(g[c]))
        l_adre = -math.log(float(g[y_hat]))
        if cap is not None:
            l_adre = min(l_adre, cap)
        total += l_per - lam * l_adre
    return total / len(labels)


@pytest.mark.parametrize("lam", [0.0, 0.2, 1.0])
def test_regularized_risk_matches_a_direct_computation(batch, lam):
    logits, labels = batch
    parts = regularized_risk(logits, labels, lam)
    assert float(parts.loss) == pytest.approx(direct(logits, labels, lam), rel=1e-5)


def test_single_draw_variant_and_cap(batch):
    logits, labels = batch
    draw = torch.tensor([3, 0, 1, 2, 3])
    parts = regularized_risk(logits, labels, 0.3, single_draw=draw, adre_cap=1.5)
    assert float(parts.loss) == pytest.approx(direct(logits, labels, 0.3, draw=draw, cap=1.5), rel=1e-5)
    assert float(parts.l_adre.max()) <= 1.5


@pytest.mark.parametrize("cap", [None, 0.5, 1.1, 50.0])
def test_the_parts_mark_where_the_cap_was_active(batch, cap):
    logits, labels = batch
    parts = regularized_risk(logits, labels, 0.3, adre_cap=cap)
    expected = []
    for i in range(len(labels)):  # the uncapped l_adre, with probabilities
        g = F.softmax(logits[i], -1).mean(0)
        wrong = max((c for c in range(6) if c != int(labels[i])), key=lambda c: float(g[c]))
        expected.append(1.0 if cap is not None and -math.log(float(g[wrong])) > cap else 0.0)
    assert parts.capped.tolist() == expected
    if cap == 1.1:
        assert 0 < sum(expected) < len(expected)  # the batch has examples on both sides of this cap


def test_smoothed_log_probs_is_the_log_of_the_mean_softmax(batch):
    logits, _ = batch
    torch.testing.assert_close(smoothed_log_probs(logits).exp(), F.softmax(logits, -1).mean(1))


def test_runner_up_is_the_best_wrong_class(batch):
    logits, labels = batch
    log_g = smoothed_log_probs(logits)
    hat = runner_up(log_g, labels)
    assert not torch.any(hat == labels)
    for i in range(len(labels)):
        others = [c for c in range(6) if c != labels[i]]
        assert int(hat[i]) == max(others, key=lambda c: float(log_g[i, c]))


def test_one_copy_and_no_lambda_is_basic_cross_entropy(batch):
    logits, labels = batch
    one = logits[:, :1]
    assert float(regularized_risk(one, labels, 0.0).loss) == pytest.approx(float(F.cross_entropy(one[:, 0], labels)), rel=1e-6)
    # and with lambda = 0 the ADRE term does not enter at all: the cross-entropy of every copy, averaged
    copies = logits.shape[1]
    every_copy = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.repeat_interleave(copies))
    assert float(regularized_risk(logits, labels, 0.0).loss) == pytest.approx(float(every_copy), rel=1e-6)


def test_label_smoothing_is_passed_to_cross_entropy(batch):
    logits, labels = batch
    want = F.cross_entropy(logits[:, 0], labels, label_smoothing=0.1)
    assert float(perturbed_risk(logits[:, :1], labels, label_smoothing=0.1).mean()) == pytest.approx(float(want), rel=1e-6)


def test_adre_gradient_pushes_the_runner_up_down(batch):
    logits, labels = batch
    logits = logits.clone().requires_grad_(True)
    (-adre_term(smoothed_log_probs(logits), labels).sum()).backward()
    hat = runner_up(smoothed_log_probs(logits.detach()), labels)
    # minimizing -l_adre lowers the runner-up's logits on every copy
    assert torch.all(logits.grad[torch.arange(5), :, hat] > 0)


def test_objective_is_unbounded_below_when_every_copy_is_right():
    # docs/results.md: scaling up logits that classify every copy correctly sends -lam * l_adre to -inf
    labels = torch.tensor([1])
    base = torch.tensor([[[0.0, 2.0, 0.5], [0.1, 1.5, 0.0]]])
    losses = [float(regularized_risk(base * scale, labels, 0.2).loss) for scale in (1, 10, 100)]
    assert losses[0] > losses[1] > losses[2] and losses[2] < -10
    capped = [float(regularized_risk(base * scale, labels, 0.2, adre_cap=6.9).loss) for scale in (10, 100)]
    assert min(capped) >= -0.2 * 6.9 - 1e-6


def test_divergence_diagnostics_per_example():
    labels = torch.tensor([1, 0])
    logits = torch.tensor([[[0.0, 2.0, 0.5], [0.1, 1.5, 0.0]],     # both copies right
                           [[3.0, 2.0, 0.5], [0.1, 4.5, 0.0]]])    # one copy of two right
    parts = regularized_risk(logits, labels, 0.2)
    assert parts.correct.tolist() == [1.0, 0.5] and parts.all_correct.tolist() == [1.0, 0.0]
    assert parts.max_logit.tolist() == [2.0, 4.5]


def test_bad_shapes_are_refused(batch):
    logits, labels = batch
    with pytest.raises(ValueError, match=r"\(B, k, C\)"):
        regularized_risk(logits[:, 0], labels, 0.1)
