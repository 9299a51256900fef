"""Settings are validated once, where they enter: a training step, and each further batch of a
certified dataset, check no rule again (every check goes through ``Rule.problem``)."""

import pytest

from smoothcert.data import load_dataset
from smoothcert.jobs.evaluate import certify_dataset, predict_dataset
from smoothcert.rules import Rule
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.smoothing.checkpoint import load_smoothed
from smoothcert.training import loop
from smoothcert.training.config import preset


@pytest.fixture
def rule_checks(monkeypatch):
    """The names of the values checked against a rule, in order, while the test runs."""
    names = []
    original = Rule.problem

    def counting(self, name, value):
        names.append(name)
        return original(self, name, value)

    monkeypatch.setattr(Rule, "problem", counting)
    return names


@pytest.mark.parametrize("overrides", [
    dict(method="basic"),
    dict(method="adre", k=2, lam=0.5, adre_cap=6.9),
    dict(method="adre_adv", k=2, lam=0.1, eps=0.5, attack_steps=1),
    dict(method="macer", k=2, lam=1.0),
    dict(method="consistency", k=2, lam=10.0),
    dict(method="smoothmix", k=2, mix_steps=1, mix_start=1),
], ids=lambda overrides: overrides["method"])
def test_a_training_step_checks_no_setting(tmp_path, colour_digits, rule_checks, monkeypatch, overrides):
    checks_per_step = []
    original_step = loop.training_step

    def step(*args, **kwargs):
        before = len(rule_checks)
        parts = original_step(*args, **kwargs)
        checks_per_step.append(rule_checks[before:])
        return parts

    monkeypatch.setattr(loop, "training_step", step)
    config = preset("cifar10", arch="cifar_resnet20", data_dir=str(colour_digits), epochs=1, batch_size=100, workers=0, eps_warmup=0,
                    out_dir=str(tmp_path / "run"), **overrides)
    loop.train(config, progress=False)
    assert len(checks_per_step) == 2 * (overrides.get("k", 1) if config.chunks > 1 else 1)
    assert checks_per_step == [[]] * len(checks_per_step)
    # the whole run checks each setting once, where train() takes the config
    assert rule_checks and len(rule_checks) == len(set(rule_checks)), sorted(rule_checks)


@pytest.fixture(scope="module")
def smoothed(checkpoint):
    return load_smoothed(checkpoint)[0]


@pytest.mark.parametrize("extra", [dict(method="both"), dict(target_radius=0.25), dict(radii="auto")], ids=["both", "early", "grid"])
def test_certifying_more_batches_checks_no_setting_again(tmp_path, smoothed, rule_checks, extra):
    digits = load_dataset("mnist", "test")
    counted = {}
    for inputs in (1, 4):
        del rule_checks[:]
        settings = CertifySettings(n0=10, n=200, batch_size=210, max_count=inputs, **extra)
        certify_dataset(smoothed, digits, tmp_path / f"cert{inputs}.tsv", settings, progress=False)
        counted[inputs] = list(rule_checks)
    assert counted[4] == counted[1]  # one group per input: nothing is checked per batch
    assert "alpha" in counted[1] and counted[1].count("alpha") == 1  # checked once, where the settings enter


def test_predicting_more_inputs_checks_no_setting_again(tmp_path, smoothed, rule_checks):
    digits = load_dataset("mnist", "test")
    counted = {}
    for inputs in (1, 4):
        del rule_checks[:]
        predict_dataset(smoothed, digits, tmp_path / f"pred{inputs}.tsv", CertifySettings(n=100, max_count=inputs), progress=False)
        counted[inputs] = list(rule_checks)
    assert counted[4] == counted[1] and counted[1].count("alpha") == 1
