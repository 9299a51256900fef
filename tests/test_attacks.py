import pytest
import torch

from smoothcert.training.methods.smoothadv import smoothed_attack_objective, smoothed_pgd
from smoothcert.models import build_model


@pytest.fixture
def setting():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, (0.13,), (0.31,)).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (16,), generator=gen)
    noise = 0.25 * torch.randn(16, 4, 1, 28, 28, generator=gen)
    return model, x, labels, noise


@pytest.mark.parametrize("lam", [0.0, 0.5])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_pgd_stays_in_the_ball_and_box_and_raises_the_objective(setting, lam, steps):
    model, x, labels, noise = setting
    eps = 0.5
    adversarial = smoothed_pgd(model, x, labels, noise, eps=eps, steps=steps, lam=lam)
    distance = (adversarial - x).flatten(1).norm(dim=1)
    assert torch.all(distance <= eps + 1e-5)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        before = smoothed_attack_objective(model, x, labels, noise, lam)
        after = smoothed_attack_objective(model, adversarial, labels, noise, lam)
    assert float(after.mean()) > float(before.mean())
    assert (after > before).float().mean() >= 0.9


def test_attack_leaves_parameters_alone(setting):
    model, x, labels, noise = setting
    smoothed_pgd(model, x, labels, noise, eps=0.5, steps=2)
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_step_size_is_two_eps_over_steps(setting):
    model, x, labels, noise = setting
    x = x * 0.5 + 0.25  # away from the box edges, so the step is not clipped
    one = smoothed_pgd(model, x, labels, noise, eps=0.2, steps=1)
    # one step of size 2 eps is projected back to the sphere of radius eps
    torch.testing.assert_close((one - x).flatten(1).norm(dim=1), torch.full((16,), 0.2), atol=1e-5, rtol=0)


def test_zero_radius_is_the_identity(setting):
    model, x, labels, noise = setting
    assert torch.equal(smoothed_pgd(model, x, labels, noise, eps=0.0, steps=3), x)
    with pytest.raises(ValueError, match="non-negative"):
        smoothed_pgd(model, x, labels, noise, eps=-1.0, steps=3)


def test_attack_uses_the_capped_adre_term_of_the_training_loss(setting):
    from smoothcert.training.objectives import adre_term, smoothed_log_probs

    model, x, labels, noise = setting
    lam, cap = 0.5, 0.1  # a runner-up has at most 1/2 of the mass, so every l_adre is at least log 2 > 0.1
    with torch.no_grad():
        capped = smoothed_attack_objective(model, x, labels, noise, lam, adre_cap=cap)
        free = smoothed_attack_objective(model, x, labels, noise, lam)
        batch, copies = noise.shape[:2]
        log_g = smoothed_log_probs(model((x.unsqueeze(1) + noise).flatten(0, 1)).view(batch, copies, -1))
    l_adre = adre_term(log_g, labels)
    assert torch.all(l_adre > cap)
    torch.testing.assert_close(capped, free + lam * (l_adre - cap))
    # the capped term is constant here, so the attack on it is SmoothAdv's attack
    torch.testing.assert_close(smoothed_pgd(model, x, labels, noise, eps=0.5, steps=2, lam=lam, adre_cap=cap),
                               smoothed_pgd(model, x, labels, noise, eps=0.5, steps=2))
