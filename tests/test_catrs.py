"""CAT-RS end to end: the votes command (resumable), training against its file, and the refusals."""

import json

import numpy as np
import pytest
import torch

from smoothcert.cli import main
from smoothcert.data import load_dataset
from smoothcert.models.checkpoint import load_checkpoint
from smoothcert.training.config import preset
from smoothcert.training.epoch_log import read_log
from smoothcert.training.loop import train
from smoothcert.training.soft_labels import read_votes


def write_votes(path, dataset="mnist", split="train", size=None):
    """A votes file by hand: 18 of 20 votes for the true label, 2 for the next class."""
    data = load_dataset("mnist", "train")
    size = len(data) if size is None else size
    lines = ["idx\tlabel\tvotes"]
    for idx in range(size):
        label = int(data[idx][1])
        votes = [0] * 10
        votes[label], votes[(label + 1) % 10] = 18, 2
        lines.append(f"{idx}\t{label}\t{','.join(map(str, votes))}")
    path.write_text("\n".join(lines) + "\n")
    path.with_name(path.name + ".json").write_text(json.dumps({"dataset": dataset, "split": split, "n": 20}))
    return path


@pytest.fixture(scope="module")
def votes(tmp_path_factory):
    return write_votes(tmp_path_factory.mktemp("votes") / "votes.tsv")


def catrs(tmp_path, votes, name, **overrides):
    return preset("mnist", method="catrs", k=2, lam=0.5, eps=1.0, attack_steps=2, catrs_votes=str(votes), batch_size=200,
                  out_dir=str(tmp_path / name), **{"epochs": 1, **overrides})


def test_catrs_trains_and_resumes_to_the_uninterrupted_weights(tmp_path, votes):
    straight = train(catrs(tmp_path, votes, "straight", epochs=2), progress=False)
    train(catrs(tmp_path, votes, "resumed"), progress=False)
    resumed = train(catrs(tmp_path, votes, "resumed", epochs=2), resume=True, progress=False)
    a, b = load_checkpoint(straight)["state_dict"], load_checkpoint(resumed)["state_dict"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    accuracy = [float(row["train_noisy_acc"]) for row in read_log(tmp_path / "straight" / "log.csv", 2)]
    assert accuracy[1] > accuracy[0] > 0.2  # accuracy under noise on the training digits improves


def test_the_votes_file_is_read_as_shares_and_checked(tmp_path, votes):
    shares = read_votes(votes, "mnist", 4000)
    assert shares.shape == (4000, 10) and np.allclose(shares.sum(axis=1), 1) and shares.max() == pytest.approx(0.9)
    with pytest.raises(ValueError, match="not on the training split of 'cifar10'"):
        read_votes(votes, "cifar10", 4000)
    short = write_votes(tmp_path / "short.tsv", size=100)
    with pytest.raises(ValueError, match="misses the votes of 3900 of the 4000 training examples"):
        read_votes(short, "mnist", 4000)
    test_split = write_votes(tmp_path / "test.tsv", split="test")
    with pytest.raises(ValueError, match="test split"):
        read_votes(test_split, "mnist", 4000)


def test_the_votes_command_writes_every_training_example_and_resumes(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--batch-size", "200", "--out-dir", str(tmp_path / "gauss"), "--quiet"]) == 0
    command = ["votes", "--checkpoint", str(tmp_path / "gauss" / "checkpoint.pt"), "--outfile", str(tmp_path / "v.tsv"), "--n", "10",
               "--quiet"]
    assert main(command) == 0
    first = (tmp_path / "v.tsv").read_text()
    lines = first.splitlines()
    assert len(lines) == 4001 and all(sum(map(int, line.split("\t")[2].split(","))) == 10 for line in lines[1:])
    kept = "\n".join(lines[:2001]) + "\n" + lines[2001][:3]  # cut off mid-row, as a killed run leaves it
    (tmp_path / "v.tsv").write_text(kept)
    assert main(command + ["--resume"]) == 0
    assert (tmp_path / "v.tsv").read_text() == first  # the same votes: the noise of each example is its own
    assert read_votes(tmp_path / "v.tsv", "mnist", 4000).shape == (4000, 10)


def test_the_attacked_copies_go_through_the_model_whether_or_not_an_example_is_confident():
    """The authors' step attacks the noise of the whole chunk and passes the attacked copies through
    the model in train mode whatever K is (so every process of a group makes the same passes, and
    BatchNorm sees the same statistics); only the loss keeps the K = k examples."""
    from smoothcert.training.config import TrainConfig
    from smoothcert.training.loop import training_step

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    passes = []
    model.register_forward_hook(lambda module, args, out: passes.append(module.training))
    x, labels = torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2, 0])
    noise = torch.randn(4, 2, 1, 3, 4) * 0.5
    config = TrainConfig(method="catrs", k=2, lam=0.5, eps=1.0, attack_steps=3, catrs_votes="v")
    never = torch.ones(4, 2)  # no uniform below any confidence: K = 0, clipped to 1 < k
    parts = training_step(model, x, labels, noise, None, config, extra=never, target=torch.full((4, 3), 1 / 3))
    assert passes == [True, False, False, False, True]  # clean copies, 3 attack steps (eval), attacked copies
    from smoothcert.training.methods.catrs import catrs_low_confidence

    clean = model((x.unsqueeze(1) + noise).flatten(0, 1)).view(4, 2, -1)
    low = catrs_low_confidence(clean, labels, torch.zeros(4, dtype=torch.long)).mean()  # no example confident: L_low alone
    assert float(parts.loss.detach()) == pytest.approx(float(low.detach()), rel=1e-6)
