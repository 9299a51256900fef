"""The field's objectives and attacks against computations example by example in numpy/scipy
(gradients: tests/test_objective_gradients.py), and their edge cases."""

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import norm

from smoothcert.training.methods.catrs import catrs_high_confidence, catrs_loss, catrs_low_confidence, catrs_noise_attack
from smoothcert.training.methods.consistency import consistency_loss
from smoothcert.training.methods.macer import macer_loss
from smoothcert.training.methods.smoothadv import smoothed_attack_objective
from smoothcert.training.methods.smoothmix import smoothmix_loss, smoothmix_path


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(6, 4, 5, generator=gen) * 0.4).double()
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    return logits, labels


def macer_direct(logits, labels, sigma, lam, gamma, beta):
    total = 0.0
    for z, y in zip(logits.numpy(), labels.numpy()):
        pbar = softmax(z, axis=-1).mean(axis=0)
        loss = -math.log(pbar[y] + 1e-10)
        qbar = softmax(beta * z, axis=-1).mean(axis=0)
        first, second = np.sort(qbar)[::-1][:2]
        xi = norm.ppf(first) - norm.ppf(second)
        if np.argmax(qbar) == y and np.isfinite(xi) and xi <= gamma:
            loss += lam * sigma / 2 * (gamma - xi)
        total += loss
    return total / len(labels)


def consistency_direct(logits, labels, lam, eta):
    total = 0.0
    for z, y in zip(logits.numpy(), labels.numpy()):
        s = softmax(z, axis=-1)
        pbar = s.mean(axis=0)
        cross_entropy = np.mean([-math.log(copy[y]) for copy in s])
        kl = np.mean([np.sum(pbar * (np.log(pbar) - np.log(copy))) for copy in s])
        entropy = -np.sum(pbar * np.log(pbar))
        total += cross_entropy + lam * kl + eta * entropy
    return total / len(labels)


@pytest.mark.parametrize("sigma,lam,gamma,beta", [(0.25, 12.0, 8.0, 16.0), (0.5, 4.0, 8.0, 16.0), (0.5, 1.0, 0.3, 2.0)])
def test_macer_matches_a_direct_computation(batch, sigma, lam, gamma, beta):
    logits, labels = batch
    assert float(macer_loss(logits, labels, sigma, lam, gamma, beta).loss) == pytest.approx(
        macer_direct(logits, labels, sigma, lam, gamma, beta), rel=1e-9)


@pytest.mark.parametrize("lam,eta", [(20.0, 0.5), (10.0, 0.5), (0.0, 0.0), (1.0, 2.0)])
def test_consistency_matches_a_direct_computation(batch, lam, eta):
    logits, labels = batch
    assert float(consistency_loss(logits, labels, lam, eta).loss) == pytest.approx(consistency_direct(logits, labels, lam, eta), rel=1e-9)


def test_macer_counts_no_robustness_where_no_example_is_ranked_correct(batch):
    logits, labels = batch
    wrong = (labels + 1) % 5
    boosted = logits.clone()
    boosted[torch.arange(6), :, wrong] += 3.0  # every copy prefers a wrong class
    parts = macer_loss(boosted, labels, 0.5, 100.0)
    pbar = torch.softmax(boosted, -1).mean(1)
    assert float(parts.loss) == pytest.approx(float(-torch.log(pbar[torch.arange(6), labels] + 1e-10).mean()), rel=1e-12)


def test_macer_skips_an_infinite_margin_and_one_above_gamma():
    labels = torch.tensor([0, 0])
    confident = torch.tensor([[[60.0, 0.0, 0.0]] * 2, [[0.2, 0.0, 0.0]] * 2], dtype=torch.float32)
    # example 0: the tempered runner-up probability underflows to 0, xi = inf; example 1 is finite
    parts = macer_loss(confident, labels, 0.5, 1.0, gamma=8.0, beta=16.0)
    assert torch.isfinite(parts.loss)
    pbar = torch.softmax(confident, -1).mean(1)
    classification = -torch.log(pbar[:, 0] + 1e-10)
    qbar = torch.softmax(16 * confident[1], -1).mean(0).double().numpy()
    xi = norm.ppf(np.sort(qbar)[-1]) - norm.ppf(np.sort(qbar)[-2])
    assert xi < 8.0
    expected = (classification.sum() + 0.25 * (8.0 - xi)) / 2
    assert float(parts.loss) == pytest.approx(float(expected), rel=1e-5)
    above = macer_loss(confident[1:], labels[1:], 0.5, 1.0, gamma=xi / 2, beta=16.0)  # xi > gamma: not counted
    assert float(above.loss) == pytest.approx(float(classification[1]), rel=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda z, y: macer_loss(z, y, 0.5, -1.0), "lam must be a non-negative finite number, got -1.0"),
    (lambda z, y: macer_loss(z, y, 0.5, 1.0, gamma=0.0), "gamma must be a positive finite number, got 0.0"),
    (lambda z, y: macer_loss(z, y, 0.5, 1.0, beta=-2.0), "beta must be a positive finite number, got -2.0"),
    (lambda z, y: macer_loss(z, y, 0.0, 1.0), "sigma must be a positive finite number, got 0.0"),
    (lambda z, y: consistency_loss(z, y, -0.5), "lam must be a non-negative finite number, got -0.5"),
    (lambda z, y: consistency_loss(z, y, 1.0, eta=math.nan), "eta must be a non-negative finite number, got nan"),
    (lambda z, y: consistency_loss(z[0], y, 1.0), "expected logits of shape (B, k, C)"),
    (lambda z, y: smoothmix_loss(z, z, y, torch.zeros(6), -5.0), "eta must be a non-negative finite number, got -5.0"),
])
def test_bad_settings_are_refused(batch, call, message):
    logits, labels = batch
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(logits, labels)


def test_macer_gradient_stays_finite_where_the_margin_is_infinite():
    logits = torch.tensor([[[60.0, 0.0, 0.0]] * 2, [[0.2, 0.0, 0.0]] * 2], requires_grad=True)
    macer_loss(logits, torch.tensor([0, 0]), 0.5, 4.0).loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].abs().sum() > 0


def smoothmix_direct(clean, mixed, labels, weights, eta, warm):
    total = 0.0
    for z, zm, y, l in zip(clean.numpy(), mixed.numpy(), labels.numpy(), weights.numpy()):
        s = softmax(z, axis=-1)
        pbar = s.mean(axis=0)
        cross_entropy = np.mean([-math.log(copy[y]) for copy in s])
        target = (1 - l) * pbar + l / z.shape[-1]
        kl = np.mean([np.sum(target * (np.log(target) - np.log(copy))) for copy in softmax(zm, axis=-1)])
        total += cross_entropy + (eta * warm * kl if np.argmax(pbar) == y else 0.0)
    return total / len(labels)


@pytest.mark.parametrize("eta,warm", [(5.0, 1.0), (5.0, 0.3), (0.0, 1.0)])
def test_smoothmix_matches_a_direct_computation(batch, eta, warm):
    logits, labels = batch
    mixed = logits.flip(0) * 0.7 + 0.1
    weights = torch.linspace(0.0, 0.5, len(labels), dtype=torch.float64)
    got = float(smoothmix_loss(logits, mixed, labels, weights, eta, warm).loss)
    assert got == pytest.approx(smoothmix_direct(logits, mixed, labels, weights, eta, warm), rel=1e-9)


def test_smoothmix_path_ascends_in_steps_of_alpha_inside_the_pixel_box():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x = torch.rand(5, 1, 3, 4) * 0.5 + 0.25
    labels = torch.tensor([0, 1, 2, 0, 1])
    noise = torch.randn(5, 4, 1, 3, 4) * 0.25
    first, last = smoothmix_path(model, x, labels, noise, steps=3, step_size=0.1)
    assert torch.allclose((first - x).flatten(1).norm(dim=1), torch.full((5,), 0.1), atol=1e-5)  # no clamp at this size
    assert float(last.min()) >= 0 and float(last.max()) <= 1
    objective = lambda z: smoothed_attack_objective(model, z, labels, noise, 0.0)
    assert torch.all(objective(last) > objective(x))
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_catrs_terms_match_a_direct_computation(batch):
    logits, labels = batch
    kept = torch.tensor([0, 1, 2, 4, 9, 3])  # 0 clipped to 1, 9 clipped to k = 4
    target = torch.softmax(torch.randn(6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64), -1)
    adversarial = logits * 1.3 - 0.2
    low, high, total = [], [], 0.0
    for z, za, y, kk, p in zip(logits.numpy(), adversarial.numpy(), labels.numpy(), kept.numpy(), target.numpy()):
        ces = sorted(-math.log(copy[y]) for copy in softmax(z, axis=-1))
        kk = min(max(kk, 1), 4)
        low.append(sum(ces[:kk]) / 4)
        high.append(max(np.sum(p * (np.log(p) - np.log(q))) for q in softmax(za, axis=-1)))
        total += low[-1] + (0.5 * high[-1] if kk == 4 else 0.0)
    assert catrs_low_confidence(logits, labels, kept).numpy() == pytest.approx(low, rel=1e-10)
    assert catrs_high_confidence(adversarial, target).numpy() == pytest.approx(high, rel=1e-10)
    assert float(catrs_loss(logits, adversarial, labels, target, kept, 0.5).loss) == pytest.approx(total / 6, rel=1e-10)


def _catrs_attack_in_numpy(weight, bias, x, noise, target, eps, steps):
    """CAT-RS's noise attack on the linear model ``z -> weight z + bias``, copy by copy: the
    gradient of ``KL(target || softmax)`` in the noise is ``weight^T (softmax - target)``."""
    attacked = noise.copy()
    for i in range(noise.shape[0]):
        for j in range(noise.shape[1]):
            start, current = noise[i, j].ravel(), noise[i, j].ravel().copy()
            for _ in range(steps):
                grad = weight.T @ (softmax(weight @ (x[i].ravel() + current) + bias) - target[i])
                current = current + 2 * eps / steps * grad / np.linalg.norm(grad)
                delta = current - start
                current = start + delta * min(1.0, eps / np.linalg.norm(delta))
                rms = lambda v: np.sqrt(np.mean(v ** 2))
                current = start.mean() + (current - current.mean()) * rms(start) / rms(current)
            attacked[i, j] = current.reshape(noise.shape[2:])
    return attacked


def test_catrs_noise_attack_matches_a_computation_copy_by_copy_and_raises_the_divergence():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).double()
    x = torch.rand(4, 1, 3, 4, dtype=torch.float64)
    noise = torch.randn(4, 2, 1, 3, 4, dtype=torch.float64) * 0.5
    target = torch.softmax(model(x) + torch.randn(4, 3, dtype=torch.float64), -1).detach()
    attacked = catrs_noise_attack(model, x, noise, target, eps=0.5, steps=4)
    linear = model[1]
    expected = _catrs_attack_in_numpy(linear.weight.detach().numpy(), linear.bias.detach().numpy(), x.numpy(), noise.numpy(),
                                      target.numpy(), 0.5, 4)
    np.testing.assert_allclose(attacked.numpy(), expected, rtol=1e-9, atol=1e-9)
    dims = (2, 3, 4)
    torch.testing.assert_close(attacked.mean(dim=dims), noise.mean(dim=dims), atol=1e-12, rtol=0)  # each copy keeps its mean
    assert torch.all((attacked - noise).flatten(2).norm(dim=2) > 0)
    divergence = lambda n: catrs_high_confidence(model((x.unsqueeze(1) + n).flatten(0, 1)).view(4, 2, -1), target)
    assert torch.all(divergence(attacked) > divergence(noise))
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_the_objectives_answer_to_the_names_of_the_api(batch):
    """``smoothcert.losses.macer_loss`` and ``smoothcert.consistency_loss`` compute the direct
    transcriptions with their documented defaults (MACER's gamma 8, beta 16; Consistency's eta
    0.5), so a default changed on one side only fails here."""
    import smoothcert
    from smoothcert import losses

    logits, labels = batch
    assert float(losses.macer_loss(logits, labels, 0.5, 4.0).loss) == pytest.approx(macer_direct(logits, labels, 0.5, 4.0, 8.0, 16.0), rel=1e-9)
    assert float(smoothcert.consistency_loss(logits, labels, 10.0).loss) == pytest.approx(consistency_direct(logits, labels, 10.0, 0.5),
                                                                                         rel=1e-9)


def test_smoothmix_one_step_start_is_shrunk_to_the_warm_up_radius_and_stands_for_the_clean_input():
    """With mix_start = 1 the authors project the first iterate to radius w * alpha around x (w the
    warm-up weight: 0.1 in the first of 10 warm-up epochs) and use that point in place of x, both
    as the mixup start and in the cross-entropy term."""
    from smoothcert.training.config import TrainConfig
    from smoothcert.training.loop import training_step

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).double()
    x = torch.rand(5, 1, 3, 4, dtype=torch.float64) * 0.5 + 0.25
    labels = torch.tensor([0, 1, 2, 0, 1])
    noise = torch.randn(5, 2, 1, 3, 4, dtype=torch.float64) * 0.25
    mix = torch.full((5,), 0.3, dtype=torch.float64)
    config = TrainConfig(method="smoothmix", k=2, eta=5.0, mix_steps=3, mix_step_size=1.0, mix_start=1, mix_warmup=10)
    parts = training_step(model, x, labels, noise, None, config, epoch=0, extra=mix)
    first, last = smoothmix_path(model, x, labels, noise, 3, 1.0)
    step = (first - x).flatten(1).norm(dim=1)
    assert torch.all(step > 0.5)  # the unprojected first iterate is far outside the warm-up radius
    start = x + (first - x) * (0.1 / step).view(-1, 1, 1, 1)
    assert torch.allclose((start - x).flatten(1).norm(dim=1), torch.full((5,), 0.1, dtype=torch.float64))
    logits = lambda inputs: model((inputs.unsqueeze(1) + noise).flatten(0, 1)).view(5, 2, -1)
    expected = smoothmix_loss(logits(start), logits(0.7 * start + 0.3 * last), labels, mix, 5.0, 0.1).loss
    assert float(parts.loss.detach()) == pytest.approx(float(expected), rel=1e-12)
    late = training_step(model, x, labels, noise, None, config, epoch=9, extra=mix)  # w = 1: radius alpha holds the step
    start = x + (first - x) * (1.0 / step.clamp_min(1.0)).view(-1, 1, 1, 1)
    expected = smoothmix_loss(logits(start), logits(0.7 * start + 0.3 * last), labels, mix, 5.0, 1.0).loss
    assert float(late.loss.detach()) == pytest.approx(float(expected), rel=1e-12)
