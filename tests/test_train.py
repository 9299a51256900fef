import csv
import math
import warnings

import pytest
import torch

from smoothcert.models.checkpoint import load_checkpoint, load_classifier
from smoothcert.training.config import PRESETS, TrainConfig, preset
from smoothcert.training.loop import GlobalBatchSampler, train, training_step
from smoothcert.training.schedules import attack_radius, learning_rate_factor, regularizer_weight


def quick(tmp_path, name, **overrides):
    return preset("mnist", out_dir=str(tmp_path / name), **{"epochs": 1, **overrides})


def log_rows(folder):
    with (folder / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_basic_training_reaches_accuracy_under_noise(tmp_path):
    path = train(quick(tmp_path, "basic", sigma=0.25, epochs=3), progress=False)
    rows = log_rows(tmp_path / "basic")
    assert len(rows) == 3
    test_accuracy = float(rows[-1]["test_noisy_acc"])
    assert test_accuracy >= 0.85  # small CNN, 3 epochs, one noise draw per test digit at sigma = 0.25
    model, entries = load_classifier(path)
    assert entries["method"] == "basic" and entries["epoch"] == 3 and entries["sigma"] == 0.25


@pytest.mark.parametrize("overrides", [
    dict(method="adre", k=2, lam=0.1, single_draw_per=True, adre_cap=6.9),
    dict(method="smoothadv", k=2, eps=0.5, attack_steps=2),
    dict(method="adre_adv", k=2, lam=0.1, eps=0.5, attack_steps=1, adre_cap=6.9),
    dict(method="macer", k=2, lam=1.0, gamma=8.0, beta=16.0),  # lam = 4 reaches 0.24 after one epoch, 0.70 after two
    dict(method="consistency", k=2, lam=10.0, eta=0.5),
    dict(method="smoothmix", k=2, eta=5.0, mix_steps=2, mix_step_size=0.5, mix_start=1),
])
def test_every_method_trains_and_checkpoints(tmp_path, overrides):
    path = train(quick(tmp_path, overrides["method"], batch_size=200, **overrides), progress=False)
    entries = torch.load(path, weights_only=True)
    assert set(entries) >= {"hparams", "state_dict", "epoch", "optimizer", "scheduler", "num_classes"}
    assert not set(entries) & set(entries["hparams"])  # each setting stored once, in hparams
    assert entries["hparams"]["k"] == 2 and entries["hparams"]["method"] == overrides["method"]
    assert load_checkpoint(path)["method"] == overrides["method"]  # and named by the loaded entries
    log = log_rows(tmp_path / overrides["method"])[0]
    assert all(math.isfinite(float(v)) for v in log.values())
    assert float(log["train_noisy_acc"]) > 0.3  # training accuracy under noise after one epoch
    # the divergence diagnostics: examples with every copy right are a subset of the copies right
    assert 0 < float(log["all_correct"]) <= float(log["train_noisy_acc"]) and float(log["max_logit"]) > 0


def test_a_capped_run_whose_cap_never_bound_took_the_faithful_runs_steps(tmp_path):
    common = dict(method="adre", k=2, lam=0.1, single_draw_per=True, batch_size=200)
    faithful = load_checkpoint(train(quick(tmp_path, "faithful", **common), progress=False))["state_dict"]
    loose = load_checkpoint(train(quick(tmp_path, "loose", adre_cap=50.0, **common), progress=False))["state_dict"]
    assert float(log_rows(tmp_path / "loose")[0]["adre_capped"]) == 0.0
    assert all(torch.equal(faithful[key], loose[key]) for key in faithful)
    # a cap of 0.5 binds wherever the best wrong class has a smoothed probability below exp(-0.5) = 0.61
    tight = load_checkpoint(train(quick(tmp_path, "tight", adre_cap=0.5, **common), progress=False))["state_dict"]
    assert float(log_rows(tmp_path / "tight")[0]["adre_capped"]) > 0.5
    assert not all(torch.equal(faithful[key], tight[key]) for key in faithful)


def test_adre_with_lambda_zero_and_one_copy_is_basic():
    torch.manual_seed(0)
    from smoothcert.models import build_model

    model = build_model("small_cnn", 10, (0.13,), (0.31,))
    x, labels = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    noise = 0.25 * torch.randn(8, 1, 1, 28, 28)
    basic = training_step(model, x, labels, noise, None, TrainConfig(method="basic"))
    adre = training_step(model, x, labels, noise, None, TrainConfig(method="adre", lam=0.0))
    direct = float(torch.nn.functional.cross_entropy(model(x + noise[:, 0]), labels).detach())
    assert float(basic.loss.detach()) == pytest.approx(direct, rel=1e-6)
    assert float(adre.loss.detach()) == pytest.approx(direct, rel=1e-6)  # lambda = 0 adds nothing to the cross-entropy


def test_chunks_take_one_optimizer_step_per_chunk_on_its_share_of_the_batch(tmp_path, monkeypatch):
    """With chunks = C each loader batch of B examples becomes C SGD steps on B / C examples and
    their k noisy copies, in order (the field's scripts' layout); one chunk is one step per batch."""
    from smoothcert.training import loop

    seen = []
    step = loop.training_step

    def recording(model, x, labels, noise, *args, **kwargs):
        seen.append((x.shape[0], noise.shape[:2], x[:1].clone()))
        return step(model, x, labels, noise, *args, **kwargs)

    monkeypatch.setattr(loop, "training_step", recording)
    for chunks in (1, 2):
        seen.clear()
        config = preset("mnist", method="consistency", k=2, lam=1.0, chunks=chunks, epochs=1, batch_size=1000,
                        out_dir=str(tmp_path / f"c{chunks}"))
        assert config.chunks == chunks
        train(config, progress=False)
        assert len(seen) == 4 * chunks  # 4,000 training digits, 4 loader batches
        assert all(size == 1000 // chunks and tuple(copies) == (1000 // chunks, 2) for size, copies, _ in seen)
    assert torch.equal(seen[0][2], first_of_epoch(tmp_path)) and not torch.equal(seen[0][2], seen[1][2])


def first_of_epoch(tmp_path):
    """The first training digit of epoch 0's data order."""
    from smoothcert.data import load_dataset

    order = next(iter(GlobalBatchSampler(4000, 1000, 0, 1, seed=0)))
    return load_dataset("mnist", "train")[order[0]][0].unsqueeze(0)


def test_the_field_s_methods_default_to_their_authors_chunks():
    assert preset("mnist", method="smoothadv", k=2, eps=0.5).chunks == 2
    assert preset("mnist", method="consistency").chunks == preset("mnist", method="consistency").k == 2
    assert preset("mnist", method="smoothmix").chunks == 2 and preset("mnist", method="catrs").chunks == 4
    assert preset("mnist", method="macer").chunks == 1 and preset("mnist", method="adre", k=4, lam=0.2).chunks == 1
    assert preset("mnist", method="consistency", chunks=1).chunks == 1  # the old layout, asked for
    assert TrainConfig(method="consistency", k=2).chunks == 1  # a record without the setting: one step per batch


def test_chunks_split_each_process_s_rows_by_chunk():
    from smoothcert.training.loop import local_rows

    rows = [local_rows(12, 3, rank, 2).tolist() for rank in range(2)]
    assert rows == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]  # chunk c: rows 4c..4c+3, half to each process
    assert local_rows(12, 1, 1, 2).tolist() == list(range(6, 12))  # one chunk: the contiguous share
    whole = list(GlobalBatchSampler(24, 12, 0, 1, seed=3, chunks=3))
    parts = [list(GlobalBatchSampler(24, 12, rank, 2, seed=3, chunks=3)) for rank in range(2)]
    for step in range(2):
        for c in range(3):
            assert parts[0][step][2 * c:2 * c + 2] + parts[1][step][2 * c:2 * c + 2] == whole[step][4 * c:4 * c + 4]
    with pytest.raises(ValueError, match="divisible by the number of processes 2 times chunks 4"):
        GlobalBatchSampler(24, 12, 0, 2, seed=0, chunks=4)


@pytest.mark.parametrize("method", [dict(), dict(method="macer", k=2, lam=4.0), dict(method="consistency", k=2, lam=10.0),
                                    dict(method="smoothmix", k=2, eta=5.0, mix_steps=2)])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, method):
    straight = train(quick(tmp_path, "straight", epochs=2, batch_size=200, **method), progress=False)
    train(quick(tmp_path, "resumed", epochs=1, batch_size=200, **method), progress=False)
    resumed = train(quick(tmp_path, "resumed", epochs=2, batch_size=200, **method), resume=True, progress=False)
    a, b = load_checkpoint(straight)["state_dict"], load_checkpoint(resumed)["state_dict"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert len((tmp_path / "resumed" / "log.csv").read_text().splitlines()) == 3
    with pytest.raises(ValueError, match="cannot resume"):
        train(quick(tmp_path, "resumed", epochs=3, sigma=1.0, batch_size=200, **method), resume=True, progress=False)


def test_runaway_adre_is_reported(tmp_path):
    # the faithful objective with a large lambda runs away on these digits (docs/results.md)
    config = quick(tmp_path, "runaway", method="adre", k=4, lam=1.0, epochs=3, lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            train(config, progress=False)
        except Exception as error:  # a non-finite loss is reported as TrainingDiverged
            assert "unbounded below" in str(error)
            return
    assert any("unbounded below" in str(w.message) or "collapsed" in str(w.message) for w in caught)


def test_presets_hold_the_papers_recipes():
    cifar = preset("cifar10")
    assert (cifar.arch, cifar.batch_size, cifar.lr, cifar.lr_step, cifar.lr_gamma, cifar.epochs) == ("cifar_resnet110", 400, 0.1, 50, 0.1, 150)
    imagenet = preset("imagenet", method="adre", lam=0.05)
    assert (imagenet.arch, imagenet.momentum, imagenet.weight_decay, imagenet.label_smoothing) == ("resnet50", 0.875, 1 / 32768, 0.1)
    assert (imagenet.schedule, imagenet.warmup_epochs, imagenet.epochs, imagenet.lam) == ("cosine", 8, 50, 0.05)
    assert set(PRESETS) == {"mnist", "cifar10", "imagenet"}
    with pytest.raises(ValueError, match="unknown training options"):
        preset("mnist", learning_rate=0.1)


def test_the_fields_methods_start_from_their_authors_hyper_parameters():
    consistency = preset("cifar10", method="consistency", sigma=0.5)
    assert (consistency.k, consistency.lam, consistency.eta, consistency.arch) == (2, 10.0, 0.5, "cifar_resnet110")
    macer = preset("cifar10", method="macer", sigma=0.25, lam=3.0)  # what the user gives wins
    assert (macer.k, macer.lam, macer.gamma, macer.beta) == (16, 3.0, 8.0, 16.0)
    smoothmix = preset("cifar10", method="smoothmix", sigma=1.0)
    assert (smoothmix.k, smoothmix.eta, smoothmix.mix_steps, smoothmix.mix_step_size) == (2, 5.0, 4, 2.0)
    catrs = preset("cifar10", method="catrs", sigma=0.25)
    assert (catrs.k, catrs.eps, catrs.attack_steps, catrs.lam) == (4, 1.0, 4, 0.5)
    assert preset("cifar10", method="adre", sigma=0.25).k == TrainConfig().k  # the paper's methods: no such defaults


def test_schedules():
    step = preset("cifar10")
    assert [learning_rate_factor(step, e) for e in (0, 49, 50, 100, 149)] == [1, 1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    cosine = preset("imagenet")
    assert learning_rate_factor(cosine, 0) == pytest.approx(1 / 8)
    assert learning_rate_factor(cosine, 7) == 1.0
    assert learning_rate_factor(cosine, 8) == 1.0
    # the paper's 0.05 (1 + cos(pi t / 42)) at lr 0.1
    assert 0.1 * learning_rate_factor(cosine, 8 + 21) == pytest.approx(0.05 * (1 + math.cos(math.pi * 21 / 42)))


def test_attack_radius_ramps_up_over_the_warm_up_epochs():
    config = preset("cifar10", method="smoothadv", eps=0.5, attack_steps=2)
    assert config.eps_warmup == 10  # Salman et al.'s CIFAR-10 runs
    assert [attack_radius(config, e) for e in (0, 4, 9, 10, 149)] == [pytest.approx(0.05), pytest.approx(0.25), 0.5, 0.5, 0.5]
    assert attack_radius(preset("mnist", method="smoothadv", eps=0.5), 0) == 0.5  # no warm-up


def test_a_deferred_lambda_is_zero_until_its_epoch():
    """MACER's deferred mode: the loss of the delayed epochs is the loss with lambda = 0, the loss
    from epoch ``lam_delay`` on is the full one."""
    config = preset("mnist", method="macer", sigma=0.5, k=4, lam=4.0, lam_delay=2)
    assert [regularizer_weight(config, e) for e in (0, 1, 2, 14)] == [0.0, 0.0, 4.0, 4.0]
    torch.manual_seed(0)
    from smoothcert.models import build_model

    model = build_model("small_cnn", 10, (0.13,), (0.31,))
    x = torch.rand(16, 1, 28, 28)
    noise = 0.5 * torch.randn(16, 4, 1, 28, 28)
    with torch.no_grad():
        labels = model(x).argmax(dim=1)  # ranked first: MACER's robustness term counts these examples
    loss = lambda cfg, epoch: float(training_step(model, x, labels, noise, None, cfg, epoch=epoch).loss.detach())
    without = preset("mnist", method="macer", sigma=0.5, k=4, lam=0.0)
    assert loss(config, 0) == loss(without, 0) and loss(config, 1) == loss(without, 1)
    assert loss(config, 2) == loss(preset("mnist", method="macer", sigma=0.5, k=4, lam=4.0), 2) != loss(without, 2)


def test_global_batches_are_split_between_processes():
    whole = list(GlobalBatchSampler(20, 8, 0, 1, seed=3))
    parts = [list(GlobalBatchSampler(20, 8, rank, 2, seed=3)) for rank in range(2)]
    assert len(whole) == 2
    for step in range(2):
        assert parts[0][step] + parts[1][step] == whole[step]
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchSampler(20, 7, 0, 2, seed=0)


@pytest.mark.parametrize("overrides,message", [
    (dict(method="adre"), "needs lam > 0"),
    (dict(method="smoothadv"), "needs eps > 0"),
    (dict(sigma=0.0), "sigma must be a positive finite number, got 0.0"),
    (dict(method="mixup"), "method must be one of"),
    (dict(k=0), "k must be a positive integer, got 0"),
    (dict(dataset="cifar10"), "data_dir"),
    (dict(method="consistency", k=2, lam=10.0, eps=0.5), "method 'consistency' takes no eps"),
    (dict(k=2, chunks=3), "chunks=3 must divide batch_size=100"),
    (dict(chunks=2), "chunks=2 needs k > 1 noisy copies"),
    (dict(chunks=0), "chunks must be a positive integer, got 0"),
])
def test_bad_configurations_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides).validate()


def test_training_on_the_cifar_format(tmp_path, cifar_dir):
    config = preset("cifar10", arch="cifar_resnet20", data_dir=str(cifar_dir), epochs=1, batch_size=20, workers=0,
                    sigma=0.25, out_dir=str(tmp_path / "cifar"))
    model, entries = load_classifier(train(config, progress=False))
    assert entries["dataset"] == "cifar10" and entries["num_classes"] == 10
