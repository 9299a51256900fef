"""Every training objective against an independent reference in value AND gradient (float64, to
1e-9): the formula transcribed in numpy/scipy, example by example, and its gradient with respect to
every input tensor by Richardson-extrapolated central differences of that transcription. A
detached term, a missing term or a wrong sign changes the gradient even where the value agrees."""

import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax
from scipy.stats import norm

from smoothcert.training.methods.catrs import catrs_loss
from smoothcert.training.methods.consistency import consistency_loss
from smoothcert.training.methods.macer import macer_loss
from smoothcert.training.methods.smoothmix import smoothmix_loss
from smoothcert.training.objectives import regularized_risk

TOLERANCE = 1e-9


def numeric_gradient(f, arrays, which, h=1e-3):
    """The gradient of the scalar ``f(*arrays)`` in ``arrays[which]``: central differences at h and
    h/2, Richardson-extrapolated (error O(h^4))."""
    base = [np.array(a, dtype=np.float64) for a in arrays]
    grad = np.zeros_like(base[which])
    for index in np.ndindex(base[which].shape):
        def central(step):
            plus, minus = [a.copy() for a in base], [a.copy() for a in base]
            plus[which][index] += step
            minus[which][index] -= step
            return (f(*plus) - f(*minus)) / (2 * step)
        grad[index] = (4 * central(h / 2) - central(h)) / 3
    return grad


def assert_value_and_gradients(torch_loss, reference, arrays):
    """``torch_loss(*tensors)`` equals ``reference(*arrays)`` and so do its gradients in every array."""
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    loss = torch_loss(*tensors)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(reference(*arrays), rel=TOLERANCE, abs=TOLERANCE)
    for which, tensor in enumerate(tensors):
        np.testing.assert_allclose(tensor.grad.numpy(), numeric_gradient(reference, arrays, which), rtol=0, atol=TOLERANCE,
                                   err_msg=f"gradient in input {which}")


def logits_batch(seed, batch=4, copies=3, classes=4, scale=1.0):
    return np.random.default_rng(seed).normal(size=(batch, copies, classes)) * scale


LABELS = np.array([0, 1, 2, 3])


# --- the transcriptions: per example, from the papers' formulas -------------------------------

def ref_adre(z, lam, cap=None, single=None):
    """Feng et al. eq. 5-8: mean_i [l_per - lam * min(l_adre, cap)], l_per from all copies or copy
    ``single[i]``, l_adre = -log G[runner-up], G the mean softmax."""
    total = 0.0
    for i, y in enumerate(LABELS):
        ce = -log_softmax(z[i], axis=-1)[:, y]
        l_per = ce.mean() if single is None else ce[single[i]]
        g = softmax(z[i], axis=-1).mean(axis=0)
        runner = max((c for c in range(len(g)) if c != y), key=lambda c: g[c])
        l_adre = -math.log(g[runner])
        total += l_per - lam * (l_adre if cap is None else min(l_adre, cap))
    return total / len(LABELS)


def ref_macer(z, sigma, lam, gamma, beta):
    """Zhai et al.: -log(pbar_y + 1e-10) + lam * sigma / 2 * (gamma - xi) where the tempered
    qbar ranks y first and xi = Phi^-1(q(1)) - Phi^-1(q(2)) <= gamma."""
    total = 0.0
    for i, y in enumerate(LABELS):
        pbar = softmax(z[i], axis=-1).mean(axis=0)
        qbar = softmax(beta * z[i], axis=-1).mean(axis=0)
        first, second = np.sort(qbar)[::-1][:2]
        xi = norm.ppf(first) - norm.ppf(second)
        hinge = sigma / 2 * (gamma - xi) if np.argmax(qbar) == y and xi <= gamma else 0.0
        total += -math.log(pbar[y] + 1e-10) + lam * hinge
    return total / len(LABELS)


def ref_consistency(z, lam, eta):
    """Jeong & Shin: 1/k sum_j CE_j + lam * 1/k sum_j KL(pbar || s_j) + eta * H(pbar), pbar NOT held fixed."""
    total = 0.0
    for i, y in enumerate(LABELS):
        log_s = log_softmax(z[i], axis=-1)
        pbar = np.exp(log_s).mean(axis=0)
        kl = np.mean([np.sum(pbar * (np.log(pbar) - row)) for row in log_s])
        total += -log_s[:, y].mean() + lam * kl - eta * np.sum(pbar * np.log(pbar))
    return total / len(LABELS)


def ref_smoothmix(clean, mixed, weights, eta, warm):
    """Jeong et al. 2021: 1/k sum_j CE(clean_j) + eta * w * 1{argmax pbar = y} * 1/k sum_j
    KL(t || softmax(mixed_j)), t = (1 - l) pbar + l / C with pbar of the clean copies (its
    gradient kept: the authors' F.kl_div back-propagates into the target)."""
    total = 0.0
    for i, y in enumerate(LABELS):
        log_s = log_softmax(clean[i], axis=-1)
        pbar = np.exp(log_s).mean(axis=0)
        target = (1 - weights[i]) * pbar + weights[i] / clean.shape[-1]
        kl = np.mean([np.sum(target * (np.log(target) - row)) for row in log_softmax(mixed[i], axis=-1)])
        total += -log_s[:, y].mean() + (eta * warm * kl if np.argmax(pbar) == y else 0.0)
    return total / len(LABELS)


def ref_catrs(z, adversarial, target, kept, lam):
    """Jeong et al. 2023: 1/k (sum of the K smallest copy CEs) + lam * 1{K = k} max_j KL(pi || s*_j)."""
    total = 0.0
    copies = z.shape[1]
    for i, y in enumerate(LABELS):
        ces = np.sort(-log_softmax(z[i], axis=-1)[:, y])
        count = min(max(int(kept[i]), 1), copies)
        high = max(np.sum(target[i] * (np.log(target[i]) - row)) for row in log_softmax(adversarial[i], axis=-1))
        total += ces[:count].sum() / copies + (lam * high if count == copies else 0.0)
    return total / len(LABELS)


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("lam,cap,single", [(0.0, None, None), (0.3, None, None), (0.3, 1.13, None), (0.5, None, [0, 2, 1, 1])])
def test_adre_regularized_risk(lam, cap, single):
    draw = None if single is None else torch.tensor(single)
    assert_value_and_gradients(lambda z: regularized_risk(z, torch.tensor(LABELS), lam, single_draw=draw, adre_cap=cap).loss,
                               lambda z: ref_adre(z, lam, cap, single), [logits_batch(0)])


def test_adre_cap_binds_somewhere_in_its_case():
    z = logits_batch(0)
    uncapped = [-math.log(sorted(softmax(z[i], -1).mean(0))[-2]) for i in range(4)]
    assert min(uncapped) < 1.13 < max(uncapped)  # the capped case has capped and uncapped examples


@pytest.mark.parametrize("sigma,lam,gamma,beta", [(0.25, 12.0, 8.0, 2.0), (0.5, 4.0, 8.0, 1.0), (0.5, 4.0, 0.5, 1.0)])
def test_macer(sigma, lam, gamma, beta):
    z = logits_batch(1) + 2.0 * np.eye(4)[LABELS][:, None, :] * np.array([1, 1, 0, 1])[:, None, None]  # example 2 ranked wrong
    assert_value_and_gradients(lambda t: macer_loss(t, torch.tensor(LABELS), sigma, lam, gamma, beta).loss,
                               lambda t: ref_macer(t, sigma, lam, gamma, beta), [z])


@pytest.mark.parametrize("lam,eta", [(20.0, 0.5), (10.0, 0.5), (1.0, 2.0)])
def test_consistency(lam, eta):
    assert_value_and_gradients(lambda z: consistency_loss(z, torch.tensor(LABELS), lam, eta).loss,
                               lambda z: ref_consistency(z, lam, eta), [logits_batch(2)])


@pytest.mark.parametrize("eta,warm", [(5.0, 1.0), (5.0, 0.3)])
def test_smoothmix_in_the_clean_and_the_mixed_logits(eta, warm):
    clean = logits_batch(3) + 1.5 * np.eye(4)[[0, 1, 3, 3]][:, None, :]  # examples 0, 1, 3 counted, 2 not
    mixed = logits_batch(4)
    weights = np.array([0.1, 0.45, 0.3, 0.2])
    assert_value_and_gradients(
        lambda c, m: smoothmix_loss(c, m, torch.tensor(LABELS), torch.tensor(weights), eta, warm).loss,
        lambda c, m: ref_smoothmix(c, m, weights, eta, warm), [clean, mixed])


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_catrs_in_the_clean_and_the_attacked_logits(lam):
    z, adversarial = logits_batch(5), logits_batch(6)
    target = softmax(np.random.default_rng(7).normal(size=(4, 4)), axis=-1)
    kept = np.array([0, 2, 3, 3])  # clipped to 1; partial; twice K = k
    assert_value_and_gradients(
        lambda c, a: catrs_loss(c, a, torch.tensor(LABELS), torch.tensor(target), torch.tensor(kept), lam).loss,
        lambda c, a: ref_catrs(c, a, target, kept, lam), [z, adversarial])
