"""Each setting is declared once: its default in its dataclass field, a preset or a method's
authors only what they change, and records written before a setting existed read with the
value that reproduces what those runs did."""


import pytest

from smoothcert.settings import declared_defaults, place_fields
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.training.config import PRESETS, TrainConfig, preset
from smoothcert.training.loop import RESUMABLE_CHANGES
from smoothcert.training.methods import REGISTRY

ADDED_SINCE_THE_FIRST_RELEASE = {"chunks": 1, "lam_delay": 0}
"""Settings added after runs were first recorded, and what those runs did: one optimizer step per
loader batch, lambda from the first epoch (the settings of the field's methods came with their
methods, so no earlier run used them)."""


def test_the_mnist_recipe_is_the_declaration():
    assert preset("mnist") == TrainConfig() and PRESETS["mnist"] == {}


@pytest.mark.parametrize("name", [name for name in PRESETS if name != "mnist"])
def test_a_preset_says_only_what_it_changes(name):
    declared = declared_defaults(TrainConfig)
    restated = {key for key, value in PRESETS[name].items() if declared[key] == value}
    assert restated == set()


@pytest.mark.parametrize("method", list(REGISTRY))
def test_a_method_s_authors_settings_say_only_what_they_change(method):
    declared = declared_defaults(TrainConfig)
    for sigma in (0.25, 0.5, 1.0):
        changed = REGISTRY[method].defaults(sigma)
        assert set(changed) <= set(declared)


def test_settings_added_since_the_first_release_are_read_as_those_runs_did():
    declared = declared_defaults(TrainConfig)
    assert {key: declared[key] for key in ADDED_SINCE_THE_FIRST_RELEASE} == ADDED_SINCE_THE_FIRST_RELEASE


def test_where_a_run_is_computed_is_declared_once():
    assert place_fields(TrainConfig) == {"out_dir", "data_dir", "workers", "device", "catrs_votes"}
    assert place_fields(CertifySettings) == {"batch_size"}
    assert RESUMABLE_CHANGES == place_fields(TrainConfig) | {"epochs"}


def test_the_smoothed_classifier_s_keyword_defaults_are_the_settings_defaults():
    from inspect import signature

    from smoothcert.smoothing.classifier import SmoothedClassifier

    declared = declared_defaults(CertifySettings)
    del declared["seed"], declared["radii"]  # seed None: fresh noise; certify_grid needs a grid, certify_dataset none
    for name in ("sample_counts", "predict", "certify", "t_certify", "certify_until", "certify_grid"):
        for parameter in signature(getattr(SmoothedClassifier, name)).parameters.values():
            if parameter.name in declared and parameter.default is not parameter.empty:
                assert parameter.default == declared[parameter.name], (name, parameter.name)
