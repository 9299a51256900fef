"""Denoised smoothing: the denoiser's objectives against numpy transcriptions (value and
gradient), the frozen classifier, training that resumes, checkpoints that certify as the pair
they hold, and bad input refused in one line before any training."""

import hashlib

import numpy as np
import pytest
import torch

from smoothcert.cli import main
from smoothcert.data import load_dataset
from smoothcert.denoising.config import DenoiserConfig
from smoothcert.denoising.loop import train_denoiser
from smoothcert.denoising.objectives import mse_objective, stability_objective
from smoothcert.jobs.evaluate import certify_dataset
from smoothcert.models.checkpoint import load_checkpoint, load_classifier
from smoothcert.models.denoised import DenoisedClassifier, check_denoiser_fits
from smoothcert.models.dncnn import DnCNN
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.smoothing.checkpoint import load_smoothed
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.storage.tsv import read_results

TINY = dict(depth=3, width=8, batch_size=500, sigma=0.5)
"""A denoiser that trains an epoch of the embedded digits in seconds."""


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small CNN trained one epoch on the embedded digits without noise (method clean)."""
    out = tmp_path_factory.mktemp("clean") / "run"
    assert main(["train", "--method", "clean", "--epochs", "1", "--out-dir", str(out), "--quiet"]) == 0
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def denoiser(classifier, tmp_path_factory):
    out = tmp_path_factory.mktemp("denoiser") / "run"
    before = sha256(classifier)
    path = train_denoiser(DenoiserConfig(str(classifier), objective="mse+stab", mse_epochs=1, epochs=2, out_dir=str(out), **TINY),
                          progress=False)
    assert sha256(classifier) == before  # the classifier's file is never touched
    return path


def test_the_mse_objective_and_its_gradient_match_a_transcription():
    rng = np.random.default_rng(0)
    clean, denoised = rng.random((3, 1, 4, 4)), rng.random((3, 1, 4, 4))
    tensor = torch.tensor(denoised, requires_grad=True)
    value = mse_objective(tensor, torch.tensor(clean))
    value.backward()
    assert float(value) == pytest.approx(np.mean((denoised - clean) ** 2), rel=1e-12)
    np.testing.assert_allclose(tensor.grad.numpy(), 2 * (denoised - clean) / denoised.size, rtol=1e-12)


def test_the_stability_objective_and_its_gradient_match_a_transcription():
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(5, 16)), rng.normal(size=5)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5).double())
    with torch.no_grad():
        linear[1].weight.copy_(torch.tensor(weight))
        linear[1].bias.copy_(torch.tensor(bias))
    clean, denoised = rng.random((4, 1, 4, 4)), rng.random((4, 1, 4, 4))
    tensor = torch.tensor(denoised, requires_grad=True)
    value = stability_objective(linear, tensor, torch.tensor(clean))
    value.backward()
    target = np.argmax(clean.reshape(4, 16) @ weight.T + bias, axis=1)
    logits = denoised.reshape(4, 16) @ weight.T + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    expected = -np.mean(np.log(probabilities[np.arange(4), target]))
    gradient = ((probabilities - np.eye(5)[target]) @ weight / 4).reshape(denoised.shape)  # no gradient through the target
    assert float(value) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(tensor.grad.numpy(), gradient, rtol=1e-10)
    assert all(p.grad is not None for p in linear.parameters())  # the objective itself freezes nothing; the pair does


def test_an_untrained_dncnn_is_the_identity_and_the_pair_freezes_its_classifier():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(DnCNN(3, 4, 8)(x), x)
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10), torch.nn.BatchNorm1d(10))
    pair = DenoisedClassifier(DnCNN(3, 4, 8), classifier).train()
    assert pair.denoiser.training and not pair.classifier.training
    pair(x).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in classifier.parameters())
    assert all(p.grad is not None for p in pair.denoiser.parameters())


def test_a_denoiser_whose_output_is_not_the_classifier_s_input_is_refused():
    with pytest.raises(ValueError, match=r"the denoiser's output has shape \(2, 8, 8\), but the classifier takes inputs of shape \(3, 8, 8\)"):
        check_denoiser_fits(torch.nn.Conv2d(3, 2, 3, padding=1), (3, 8, 8))


def test_training_logs_each_objective_and_leaves_the_classifier_as_it_was(denoiser, classifier):
    rows = (denoiser.parent / "log.csv").read_text().splitlines()
    assert [row.split(",")[2] for row in rows[1:]] == ["mse", "stab"]
    model, entries = load_classifier(denoiser)
    original, _ = load_classifier(classifier, sigma=0.5)
    assert all(torch.equal(a, b) for a, b in zip(model.classifier.state_dict().values(), original.state_dict().values()))
    assert entries["dataset"] == "mnist" and entries["sigma"] == 0.5 and entries["method"] == "denoiser (mse+stab)"


def test_a_killed_denoiser_training_resumes_to_the_uninterrupted_weights(classifier, denoiser, tmp_path, monkeypatch):
    from smoothcert.denoising import loop

    config = DenoiserConfig(str(classifier), objective="mse+stab", mse_epochs=1, epochs=2, out_dir=str(tmp_path / "run"), **TINY)
    original = loop.train_denoiser_epoch

    def killed_in_the_second_epoch(run, epoch, progress):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(run, epoch, progress)

    monkeypatch.setattr(loop, "train_denoiser_epoch", killed_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_denoiser(config, progress=False)
    monkeypatch.setattr(loop, "train_denoiser_epoch", original)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    resumed = train_denoiser(config, resume=True, progress=False)
    a, b = load_checkpoint(denoiser)["state_dict"], load_checkpoint(resumed)["state_dict"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert (tmp_path / "run" / "log.csv").read_text().splitlines()[1:] != []
    with pytest.raises(ValueError, match="cannot resume .* with other settings than it was trained with: width was 8, now 16"):
        train_denoiser(DenoiserConfig(**{**config.__dict__, "epochs": 3, "width": 16}), resume=True, progress=False)


def test_the_command_line_certifies_exactly_the_smoothed_pair(denoiser, tmp_path):
    out = tmp_path / "cert.tsv"
    assert main(["certify", "--checkpoint", str(denoiser), "--outfile", str(out), "--n", "300", "--max", "6", "--quiet"]) == 0
    model, entries = load_classifier(denoiser)
    by_hand = SmoothedClassifier(model, 10, entries["sigma"], input_shape=(1, 28, 28), input_range=(0.0, 1.0))
    certify_dataset(by_hand, load_dataset("mnist", "test"), tmp_path / "hand.tsv", CertifySettings(n=300, max_count=6), progress=False)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "time"} for row in rows]
    assert strip(read_results(out)) == strip(read_results(tmp_path / "hand.tsv"))
    assert load_smoothed(denoiser)[0].sigma == 0.5


def test_a_denoiser_whose_classifier_changed_or_vanished_is_refused(denoiser, classifier, tmp_path):
    copy = tmp_path / "denoiser.pt"
    entries = torch.load(denoiser, weights_only=True)
    moved = tmp_path / "clf.pt"
    moved.write_bytes(classifier.read_bytes())
    torch.save({**entries, "hparams": {**entries["hparams"], "classifier": str(moved)}}, copy)
    assert load_classifier(copy)[1]["sigma"] == 0.5
    moved.write_bytes(classifier.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="has changed since .*SHA-256 differs.*retrain the denoiser"):
        load_classifier(copy)
    moved.unlink()
    with pytest.raises(FileNotFoundError, match="is a denoiser for the classifier .*clf.pt, which is not there"):
        load_classifier(copy)


@pytest.mark.parametrize("arguments,expected", [
    (["--objective", "mse+stab"], "objective 'mse+stab' needs 0 < mse_epochs < epochs, got mse_epochs=0"),
    (["--mse-epochs", "2"], "mse_epochs is for objective 'mse+stab'"),
    (["--depth", "1"], "depth must be an integer of at least 2, got 1"),
    (["--sigma", "0"], "sigma must be a positive finite number, got 0.0"),
])
def test_bad_denoiser_settings_are_refused_in_one_line(classifier, tmp_path, capsys, arguments, expected):
    code = main(["train-denoiser", "--classifier", str(classifier), "--out-dir", str(tmp_path / "run"), "--quiet", *arguments])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err
    assert not (tmp_path / "run").exists()


def test_a_classifier_of_another_dataset_or_missing_is_refused_before_training(tmp_path, capsys):
    code = main(["train-denoiser", "--classifier", str(tmp_path / "nowhere.pt"), "--out-dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "nowhere.pt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_the_clean_method_is_the_cross_entropy_of_the_clean_inputs_whatever_the_noise(capsys, tmp_path):
    from smoothcert.training.config import preset
    from smoothcert.training.methods import REGISTRY, StepInputs

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    x, labels = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 3, 0])
    config = preset("mnist", method="clean")
    parts = REGISTRY["clean"].step(model, model, StepInputs(x, labels, 9.0 * torch.randn(5, 1, 1, 4, 4)), config, 0)
    expected = torch.nn.functional.cross_entropy(model(x), labels)
    torch.testing.assert_close(parts.loss, expected)
    assert main(["train", "--method", "clean", "--k", "2", "--out-dir", str(tmp_path / "m"), "--quiet"]) == 2
    assert "method 'clean' trains on the clean inputs alone: leave k at 1, got k=2" in capsys.readouterr().err


@pytest.mark.slow
def test_the_denoised_study_script_tabulates_every_row_and_resumes_from_its_folder(colour_digits, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("denoised_study", Path(__file__).parents[1] / "scripts" / "denoised_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    summary = study.run(str(colour_digits), tmp_path / "study", quick=True)
    for sigma in ("0.25", "0.5"):
        for label in ("as it is", "mse denoiser", "mse+stab denoiser"):
            assert f"| sigma={sigma}, {label} |" in summary
    checkpoints = sorted((tmp_path / "study").rglob("checkpoint.pt"))
    assert len(checkpoints) == 5  # the classifier and four denoisers
    fine_tuned = load_checkpoint(tmp_path / "study" / "s0.25" / "mse+stab" / "checkpoint.pt")["hparams"]
    assert fine_tuned["objective"] == "stab" and fine_tuned["init_denoiser"] == str(tmp_path / "study" / "s0.25" / "mse" / "checkpoint.pt")
    before = {path: path.stat().st_mtime_ns for path in checkpoints}
    assert study.run(str(colour_digits), tmp_path / "study", quick=True) == summary  # finished steps are reused, not redone
    assert {path: path.stat().st_mtime_ns for path in checkpoints} == before


@pytest.mark.slow
def test_a_denoiser_trains_under_torchrun_with_two_processes(classifier, tmp_path):
    import os
    import subprocess
    import sys

    before = sha256(classifier)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "smoothcert",
               "train-denoiser", "--classifier", str(classifier), "--objective", "stab", "--epochs", "1", "--depth", "3", "--width", "8",
               "--batch-size", "500", "--sigma", "0.5", "--device", "cpu", "--quiet", "--out-dir", str(tmp_path / "two")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    # Each process normalizes its half of a batch with its own BatchNorm statistics, so the weights
    # are not those of one process on the whole batch; they are finite, trained, and the pair loads.
    assert state["epoch"] == 1 and all(bool(torch.isfinite(v).all()) for v in state["state_dict"].values())
    last = [key for key in state["state_dict"] if key.endswith("weight")][-1]
    assert float(state["state_dict"][last].abs().sum()) > 0  # the last layer started at zero
    assert sha256(classifier) == before and load_smoothed(tmp_path / "two" / "checkpoint.pt")[0].sigma == 0.5


def test_a_denoiser_checkpoint_certified_on_another_dataset_is_refused_in_one_line(denoiser, tmp_path, capsys):
    code = main(["certify", "--checkpoint", str(denoiser), "--dataset", "cifar10", "--outfile", str(tmp_path / "c.tsv"), "--n", "100",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "was trained on 'mnist', not 'cifar10'" in err


def test_mse_then_stab_starts_a_new_adam_at_the_fine_tuning_rate(denoiser):
    rows = (denoiser.parent / "log.csv").read_text().splitlines()
    assert [float(row.split(",")[1]) for row in rows[1:]] == [1e-3, 1e-4]  # lr of the mse epoch, then finetune_lr
    steps_per_epoch = len(load_dataset("mnist", "train")) // TINY["batch_size"]
    moments = load_checkpoint(denoiser)["optimizer"]["state"]
    assert {int(state["step"]) for state in moments.values()} == {steps_per_epoch}  # the mse epoch's steps are forgotten


def test_a_stability_run_from_an_mse_denoiser_starts_from_its_weights(denoiser, classifier, tmp_path, capsys):
    from smoothcert.denoising.loop import prepare_denoiser_run
    from smoothcert.runtime.distributed import local

    config = DenoiserConfig(str(classifier), objective="stab", init_denoiser=str(denoiser), lr=1e-4, epochs=1,
                            out_dir=str(tmp_path / "stab"), **TINY)
    run = prepare_denoiser_run(config, local("cpu"), resume=False)
    initial = load_checkpoint(denoiser)["state_dict"]
    assert all(torch.equal(initial[key], value) for key, value in run.pair.denoiser.state_dict().items())
    assert run.optimizer.state_dict()["state"] == {} and run.optimizer.param_groups[0]["lr"] == 1e-4
    for wrong, expected in [(classifier, "is not a denoiser checkpoint"), (denoiser, "with depth 3 and width 8; this run's is of mnist "
                                                                                  "with depth 3 and width 16")]:
        code = main(["train-denoiser", "--classifier", str(classifier), "--objective", "stab", "--init-denoiser", str(wrong),
                     "--depth", "3", "--width", "16", "--out-dir", str(tmp_path / "bad"), "--quiet"])
        err = capsys.readouterr().err
        assert code != 0 and len(err.strip().splitlines()) == 1 and expected in err
        assert not (tmp_path / "bad").exists()
