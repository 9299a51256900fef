"""Every bad input of every command and API entry point is refused with a one-line message that
names the problem and what is expected: a non-zero exit, no traceback, no file damaged.

Each command case runs against a workspace of finished outputs (a checkpoint, certification
and prediction TSVs with their settings, an analysis, a training folder); after the case every
file there must hold the bytes it held before, and no file may have been added.
"""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_cifar_batch
from smoothcert.analysis.report import analyze_files
from smoothcert.statistics.certificates import certify_from_counts, predict_from_counts, t_certify_from_counts
from smoothcert.smoothing.checkpoint import load_smoothed
from smoothcert.models.checkpoint import load_classifier
from smoothcert.cli import main
from smoothcert.data import load_dataset
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.jobs.evaluate import certify_dataset
from smoothcert.models import build_model
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.training.config import TrainConfig, preset
from smoothcert.storage.tsv import read_results
from test_checkpoints import released_cifar_state, save_released


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """The workspace: finished outputs to guard, and bad files to feed the commands."""
    root = tmp_path_factory.mktemp("bad-input")
    done = root / "done"
    run = done / "run"
    assert main(["train", "--epochs", "1", "--sigma", "0.5", "--batch-size", "200", "--out-dir", str(run), "--quiet"]) == 0
    checkpoint = run / "checkpoint.pt"
    selection = ["--checkpoint", str(checkpoint), "--n", "100", "--batch", "100", "--max", "2", "--quiet"]
    assert main(["certify", *selection, "--outfile", str(done / "cert.tsv")]) == 0
    assert main(["predict", *selection, "--outfile", str(done / "pred.tsv")]) == 0
    assert main(["analyze", str(done / "cert.tsv"), "--out-dir", str(done / "analysis"), "--radii", "0", "0.5"]) == 0

    bad = root / "bad"
    bad.mkdir()
    data = checkpoint.read_bytes()
    (bad / "truncated.pt").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    (bad / "corrupt.pt").write_bytes(bytes(corrupt))
    (bad / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save([1, 2, 3], bad / "list.pt")
    (bad / "folder.pt").mkdir()
    save_released(bad / "seven-classes.pt", "cifar_resnet20", released_cifar_state(20, classes=7))
    save_released(bad / "other-arch.pt", "cifar_resnet110", released_cifar_state(20))
    save_released(bad / "released.pt", "cifar_resnet20", released_cifar_state(20))
    (bad / "empty-data").mkdir()
    malformed = bad / "malformed-data" / "cifar-10-batches-py"
    malformed.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (malformed / name).write_bytes(b"garbage")
    half = bad / "half-data" / "cifar-10-batches-py"
    half.mkdir(parents=True)
    write_cifar_batch(half / "test_batch", np.zeros((2, 3, 32, 32), dtype=np.uint8), [0, 1])  # no training batches
    (bad / "a-file").write_text("a file, not a folder\n")
    (bad / "no-columns.tsv").write_text("a\tb\n1\t2\n")
    (bad / "empty.tsv").write_text("")
    (bad / "bad-cell.tsv").write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\tseven\t0.5\t1\t0.1\n")
    (bad / "cifar-votes.tsv").write_text("idx\tlabel\tvotes\n0\t3\t0,0,0,10,0,0,0,0,0,0\n")
    os.mkfifo(bad / "fifo.tsv")
    (bad / "binary.tsv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 20)
    (bad / "bom.tsv").write_text("\ufeffidx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\tnan\t1\t0.1\n", encoding="utf-8")
    (bad / "repeated.tsv").write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.3\t1\t0.1\n0\t1\t1\t0.3\t1\t0.1\n")
    garbage = (done / "cert.tsv").read_text().splitlines(keepends=True)
    (bad / "garbage.tsv").write_text(garbage[0] + "not a row\n" + "".join(garbage[1:]))
    (bad / "garbage.tsv.json").write_bytes((done / "cert.tsv.json").read_bytes())
    (bad / "negative-votes.tsv").write_text("idx\tlabel\tvotes\n0\t3\t0,0,0,-10,0,0,0,0,0,20\n")
    (bad / "negative-votes.tsv.json").write_text('{"dataset": "mnist", "split": "train", "n": 10}')
    state = torch.load(checkpoint, weights_only=True)
    first = next(k for k, v in state["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
    state["state_dict"][first][0].fill_(float("nan"))
    torch.save(state, bad / "nan-weights.pt")
    (bad / "cifar-votes.tsv.json").write_text('{"dataset": "cifar10", "split": "train", "n": 10}')
    return {"root": root, "done": done, "run": run, "checkpoint": checkpoint, "bad": bad}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err


# (case id, argv with {placeholders}, text the message must hold)
CERTIFY = "certify --checkpoint {checkpoint} --outfile {done}/cert.tsv --n 100 --quiet"
PREDICT = "predict --checkpoint {checkpoint} --outfile {done}/pred.tsv --n 100 --quiet"
RELEASED = "certify --checkpoint {bad}/released.pt --sigma 0.25 --outfile {done}/new.tsv --n 100 --quiet"
TRAIN = "train --epochs 1 --out-dir {done}/run --quiet"
FRESH = "train --epochs 1 --out-dir {done}/fresh --quiet"
DEMO = "demo --out-dir {done}/demo --quiet"
ANALYZE = "analyze {done}/cert.tsv --out-dir {done}/analysis"
PAPER = "paper cifar10 --data-dir {bad}/empty-data --out-dir {done}/paper"
CASES = [
    # certify: numbers
    ("certify-sigma-zero", CERTIFY + " --sigma 0", "sigma must be a positive finite number"),
    ("certify-sigma-nan", CERTIFY + " --sigma nan", "sigma must be a positive finite number"),
    ("certify-sigma-negative", CERTIFY + " --sigma -0.5", "sigma must be a positive finite number"),
    ("certify-alpha-zero", CERTIFY + " --alpha 0", "alpha must lie strictly between 0 and 1"),
    ("certify-alpha-one", CERTIFY + " --alpha 1", "alpha must lie strictly between 0 and 1"),
    ("certify-alpha-nan", CERTIFY + " --alpha nan", "alpha must lie strictly between 0 and 1"),
    ("certify-n0", CERTIFY + " --n0 0", "n0 must be a positive integer"),
    ("certify-n", CERTIFY + " --n -5", "n must be a positive integer"),
    ("certify-n-text", CERTIFY + " --n many", "invalid int value: 'many'"),
    ("certify-batch", CERTIFY + " --batch 0", "batch_size must be a positive integer"),
    ("certify-skip", CERTIFY + " --skip 0", "skip must be a positive integer"),
    ("certify-max", CERTIFY + " --max 0", "max_count must be a positive integer (or be left out), got 0"),
    ("certify-stages", CERTIFY + " --stages 0", "stages must be a positive integer"),
    ("certify-grid", CERTIFY + " --method tcertify --grid 0 1.5", "fractions alpha'/alpha in (0, 1]"),
    ("certify-target", CERTIFY + " --target-radius -1", "target_radius must be a positive finite number (or be left out), got -1.0"),
    ("certify-seed", CERTIFY + " --seed -1", "seed must be a non-negative integer"),
    # certify: names
    ("certify-method", CERTIFY + " --method smooth", "invalid choice: 'smooth'"),
    ("certify-split", CERTIFY + " --split val", "invalid choice: 'val'"),
    ("certify-pb-bound", CERTIFY + " --method tcertify --pb-bound union", "invalid choice: 'union'"),
    ("certify-radii", CERTIFY + " --radii 0.5,0.25", "radii must be 'auto' or a comma-separated increasing list"),
    ("certify-radii-word", CERTIFY + " --radii many", "radii must be 'auto' or a comma-separated increasing list"),
    ("certify-radii-both", CERTIFY + " --radii auto --target-radius 0.5", "either target_radius (one radius) or radii (a grid)"),
    ("certify-early-stop", CERTIFY + " --target-radius 0.5 --early-stop often", "invalid choice: 'often'"),
    ("certify-dataset-unknown", CERTIFY + " --dataset svhn", "unknown dataset 'svhn'"),
    ("certify-dataset-other", CERTIFY + " --dataset cifar10", "was trained on 'mnist', not 'cifar10'"),
    ("certify-device", CERTIFY + " --device gpu", "not a device name"),
    ("certify-unknown-option", CERTIFY + " --noise 0.5", "unrecognized arguments: --noise"),
    ("certify-no-checkpoint-option", "certify --outfile {done}/cert.tsv", "the following arguments are required: --checkpoint"),
    # certify: checkpoints
    ("certify-missing-checkpoint", CERTIFY.replace("{checkpoint}", "{bad}/none.pt"), "no checkpoint at"),
    ("certify-folder-checkpoint", CERTIFY.replace("{checkpoint}", "{bad}/folder.pt"), "(it is a folder)"),
    ("certify-truncated-checkpoint", CERTIFY.replace("{checkpoint}", "{bad}/truncated.pt"), "is truncated or damaged"),
    ("certify-corrupt-checkpoint", CERTIFY.replace("{checkpoint}", "{bad}/corrupt.pt"), "fails its CRC-32 check"),
    ("certify-junk-checkpoint", CERTIFY.replace("{checkpoint}", "{bad}/junk.pt"), "is not a readable checkpoint"),
    ("certify-list-checkpoint", CERTIFY.replace("{checkpoint}", "{bad}/list.pt"), "holds a list, not a checkpoint dict"),
    ("certify-classes", RELEASED.replace("released.pt", "seven-classes.pt") + " --data-dir {bad}/empty-data",
     "over 7 classes, but cifar10 has 10"),
    ("certify-arch", RELEASED.replace("released.pt", "other-arch.pt") + " --data-dir {bad}/empty-data",
     "does not hold a cifar_resnet110 with 10 classes"),
    ("certify-released-no-sigma", RELEASED.replace(" --sigma 0.25", "") + " --data-dir {bad}/empty-data", "do not record sigma"),
    # certify: data and outputs
    ("certify-no-data-dir", RELEASED, "is read from a folder: pass data_dir (--data-dir)"),
    ("certify-missing-data", RELEASED + " --data-dir {bad}/nowhere", "no CIFAR-10 found under"),
    ("certify-empty-data", RELEASED + " --data-dir {bad}/empty-data", "no CIFAR-10 found under"),
    ("certify-malformed-data", RELEASED + " --data-dir {bad}/malformed-data", "is not a CIFAR-10 python batch"),
    ("certify-unwritable", CERTIFY.replace("{done}/cert.tsv", "{bad}/a-file/cert.tsv"), "cannot write"),
    ("certify-outfile-folder", CERTIFY.replace("{done}/cert.tsv", "{done}/analysis"), "is a folder; expected the path of a results file"),
    ("certify-exists", CERTIFY, "already holds results; pass --resume"),
    ("certify-resume-other", CERTIFY + " --resume --alpha 0.01", "alpha was 0.001, now 0.01"),
    # predict
    ("predict-n", PREDICT + " --n 0", "n must be a positive integer"),
    ("predict-alpha", PREDICT + " --alpha 2", "alpha must lie strictly between 0 and 1"),
    ("predict-batch", PREDICT + " --batch 0", "batch_size must be a positive integer"),
    ("predict-skip", PREDICT + " --skip 0", "skip must be a positive integer"),
    ("predict-sigma", PREDICT + " --sigma 0", "sigma must be a positive finite number"),
    ("predict-missing-checkpoint", PREDICT.replace("{checkpoint}", "{bad}/none.pt"), "no checkpoint at"),
    ("predict-corrupt-checkpoint", PREDICT.replace("{checkpoint}", "{bad}/corrupt.pt"), "fails its CRC-32 check"),
    ("predict-device", PREDICT + " --device tpu", "not a device name"),
    ("predict-unwritable", PREDICT.replace("{done}/pred.tsv", "{bad}/a-file/p.tsv"), "cannot write"),
    ("predict-exists", PREDICT, "already holds results; pass --resume"),
    ("predict-resume-other", PREDICT + " --resume --seed 3", "seed was 0, now 3"),
    # train
    ("train-sigma-zero", FRESH + " --sigma 0", "sigma must be a positive finite number, got 0.0"),
    ("train-sigma-nan", FRESH + " --sigma nan", "sigma must be a positive finite number, got nan"),
    ("train-k", FRESH + " --k 0", "k must be a positive integer, got 0"),
    ("train-steps", FRESH + " --method smoothadv --eps 0.5 --attack-steps 0", "attack_steps must be a positive integer, got 0"),
    ("train-lam", FRESH + " --method adre --lam -0.1", "lam must be a non-negative finite number, got -0.1"),
    ("train-eps", FRESH + " --method adre_adv --lam 0.1 --eps -1", "eps must be a non-negative finite number, got -1.0"),
    ("train-adre-cap", FRESH + " --method adre --lam 0.1 --adre-cap 0", "adre_cap must be a positive finite number (or be left out), got 0.0"),
    ("train-macer-lam", FRESH + " --method macer --k 2 --lam -1", "lam must be a non-negative finite number, got -1.0"),
    ("train-macer-gamma", FRESH + " --method macer --k 2 --lam 4 --gamma 0", "gamma must be a positive finite number, got 0.0"),
    ("train-macer-beta", FRESH + " --method macer --k 2 --lam 4 --beta -16", "beta must be a positive finite number, got -16.0"),
    ("train-consistency-eta", FRESH + " --method consistency --k 2 --lam 10 --eta -0.5",
     "eta must be a non-negative finite number, got -0.5"),
    ("train-consistency-k", FRESH + " --method consistency --k 0 --lam 10", "k must be a positive integer, got 0"),
    ("train-smoothmix-steps", FRESH + " --method smoothmix --k 2 --mix-steps 0", "mix_steps must be a positive integer, got 0"),
    ("train-smoothmix-alpha", FRESH + " --method smoothmix --k 2 --mix-step-size 0", "mix_step_size must be a positive finite number, got 0.0"),
    ("train-smoothmix-start", FRESH + " --method smoothmix --k 2 --mix-start 2", "mix_start must be 0 or 1, got 2"),
    ("train-smoothmix-warmup", FRESH + " --method smoothmix --k 2 --mix-warmup -1", "mix_warmup must be a non-negative integer, got -1"),
    ("train-lam-delay", FRESH + " --method macer --k 2 --lam-delay -1", "lam_delay must be a non-negative integer, got -1"),
    ("train-smoothmix-eta", FRESH + " --method smoothmix --k 2 --eta -5", "eta must be a non-negative finite number, got -5.0"),
    ("train-catrs-no-votes", FRESH + " --method catrs --k 2 --lam 0.5 --eps 1", "method 'catrs' needs eps > 0 (the attack on the noise) and catrs_votes"),
    ("train-catrs-eps", FRESH + " --method catrs --k 2 --lam 0.5 --eps 0 --catrs-votes {bad}/votes.tsv", "method 'catrs' needs eps > 0"),
    ("train-catrs-missing-votes", FRESH + " --method catrs --k 2 --lam 0.5 --eps 1 --catrs-votes {bad}/nowhere.tsv", "no votes file"),
    ("train-catrs-other-votes", FRESH + " --method catrs --k 2 --lam 0.5 --eps 1 --catrs-votes {bad}/cifar-votes.tsv",
     "holds votes on 'cifar10' (train split), not on the training split of 'mnist'"),
    ("certify-fifo", CERTIFY.replace("{done}/cert.tsv", "{bad}/fifo.tsv"), "is not a regular file (a FIFO)"),
    ("certify-n-huge", "certify --checkpoint {checkpoint} --outfile {done}/huge.tsv --n 1000000000000000000000000000000 --max 1 --quiet",
     "n must be a positive integer of at most 2**53"),
    ("certify-nan-weights", "certify --checkpoint {bad}/nan-weights.pt --outfile {done}/nan.tsv --n 100 --quiet", "non-finite weights"),
    ("certify-resume-garbage", "certify --checkpoint {checkpoint} --outfile {bad}/garbage.tsv --n 100 --batch 100 --max 2 --resume --quiet",
     "line 2: not a row of it"),
    ("certify-batch-huge", "certify --checkpoint {checkpoint} --outfile {done}/big.tsv --n 100000 --batch 100000000000 --max 1000000 --quiet",
     "lower --batch"),
    ("analyze-binary", "analyze {bad}/binary.tsv --out-dir {done}/a2", "is not a text file"),
    ("analyze-bom-nan", "analyze {bad}/bom.tsv --out-dir {done}/a2", "bom.tsv, line 2: radius must be a finite non-negative number"),
    ("analyze-repeated", "analyze {bad}/repeated.tsv --out-dir {done}/a2", "line 3: idx 0 is repeated (first on line 2)"),
    ("train-negative-votes", FRESH + " --method catrs --catrs-votes {bad}/negative-votes.tsv",
     "negative-votes.tsv, line 2: votes must be non-negative integers"),
    ("train-momentum", FRESH + " --momentum 1.5", "momentum must lie in [0, 1), got 1.5"),
    ("train-arch-input", FRESH + " --arch cifar_resnet20", "architecture 'cifar_resnet20' does not take the inputs of 'mnist'"),
    ("train-batch-huge", FRESH + " --batch-size 100000000", "fewer than one batch of 100000000"),
    ("train-chunks-zero", FRESH + " --chunks 0", "chunks must be a positive integer, got 0"),
    ("train-chunks-divide", FRESH + " --method consistency --batch-size 99", "chunks=2 must divide batch_size=99"),
    ("train-chunks-one-copy", FRESH + " --chunks 4", "chunks=4 needs k > 1 noisy copies per example"),
    ("train-consistency-eps", FRESH + " --method consistency --eps 0.5", "method 'consistency' takes no eps (got eps=0.5)"),
    ("votes-n", "votes --checkpoint {done}/run/checkpoint.pt --outfile {bad}/v.tsv --n 0", "n must be a positive integer, got 0"),
    ("train-epochs", FRESH.replace("--epochs 1", "--epochs 0"), "epochs must be a positive integer, got 0"),
    ("train-batch", FRESH + " --batch-size 0", "batch_size must be a positive integer, got 0"),
    ("train-lr", FRESH + " --lr -0.1", "lr must be a non-negative finite number"),
    ("train-seed", FRESH + " --seed -2", "seed must be a non-negative integer"),
    ("train-workers", FRESH + " --workers -1", "workers must be a non-negative integer, got -1"),
    ("train-method", FRESH + " --method mixup", "argument --method: invalid choice: 'mixup'"),
    ("train-arch", FRESH + " --arch vgg16", "argument --arch: invalid choice: 'vgg16'"),
    ("train-preset", FRESH + " --preset svhn", "unknown preset 'svhn'"),
    ("train-schedule", FRESH + " --schedule linear", "argument --schedule: invalid choice: 'linear'"),
    ("train-device", FRESH + " --device cuda:x", "not a device name"),
    ("train-no-data-dir", FRESH + " --preset cifar10", "set data_dir (--data-dir)"),
    ("train-missing-data", FRESH + " --preset cifar10 --data-dir {bad}/nowhere", "no CIFAR-10 found under"),
    ("train-malformed-data", FRESH + " --preset cifar10 --data-dir {bad}/malformed-data", "is not a CIFAR-10 python batch"),
    ("train-half-data", FRESH + " --preset cifar10 --data-dir {bad}/half-data", "missing CIFAR-10 file"),
    ("train-unwritable", "train --epochs 1 --out-dir {bad}/a-file/run --quiet", "cannot write"),
    ("train-exists", TRAIN, "already exists; pass --resume"),
    ("train-resume-missing", FRESH + " --resume", "cannot resume: no checkpoint"),
    ("train-resume-other", TRAIN + " --resume --sigma 0.25 --batch-size 200", "sigma was 0.5, now 0.25"),
    # demo
    ("demo-sigma", DEMO + " --sigma 0", "sigma must be a positive finite number, got 0.0"),
    ("demo-sigma-nan", DEMO + " --sigma nan", "sigma must be a positive finite number, got nan"),
    ("demo-lam", DEMO + " --lam -1", "lam must be a non-negative finite number, got -1.0"),
    ("demo-lam-zero", DEMO + " --lam 0", "needs lam > 0"),
    ("demo-epochs", DEMO + " --epochs 0", "epochs must be a positive integer, got 0"),
    ("demo-n", DEMO + " --n 0", "n must be a positive integer"),
    ("demo-max", DEMO + " --max 0", "max_count must be a positive integer (or be left out), got 0"),
    ("demo-seed", DEMO + " --seed -1", "seed must be a non-negative integer"),
    ("demo-unwritable", "demo --out-dir {bad}/a-file/demo --quiet", "cannot write"),
    # analyze
    ("analyze-missing", "analyze {bad}/none.tsv --out-dir {done}/analysis", "no results file"),
    ("analyze-columns", "analyze {bad}/no-columns.tsv --out-dir {done}/analysis", "lacks the column(s) idx, label, predict"),
    ("analyze-empty", "analyze {bad}/empty.tsv --out-dir {done}/analysis", "is empty; expected a header"),
    ("analyze-cell", "analyze {bad}/bad-cell.tsv --out-dir {done}/analysis", "line 2"),
    ("analyze-labels", ANALYZE + " --labels a b", "got 2 labels for 1 files"),
    ("analyze-radii", ANALYZE + " --radii -1 0", "a radius must be a non-negative finite number, got -1.0"),
    ("analyze-alpha", ANALYZE + " --alpha 0", "alpha must lie strictly between 0 and 1, got 0.0"),
    ("analyze-rho", ANALYZE + " --rho 1.5", "rho must lie strictly between 0 and 1, got 1.5"),
    ("analyze-unwritable", "analyze {done}/cert.tsv --out-dir {bad}/a-file/analysis", "cannot write"),
    ("analyze-no-files", "analyze", "the following arguments are required: files"),
    # reproduce
    ("reproduce-unwritable", "reproduce --quick --out-dir {bad}/a-file/study --quiet", "cannot write"),
    ("reproduce-unknown-option", "reproduce --fast", "unrecognized arguments: --fast"),
    # paper
    ("paper-sigma", PAPER + " --sigma 0", "Table 1 has sigma in"),
    ("paper-sigma-off-grid", PAPER + " --sigma 0.3", "Table 1 has sigma in"),
    ("paper-lam", PAPER + " --sigma 0.25 --lam -1", "Table 1 has sigma in"),
    ("paper-dataset", "paper mnist --sigma 0.25 --data-dir {bad}/empty-data", "invalid choice: 'mnist'"),
    ("paper-no-data-dir", "paper cifar10 --sigma 0.25", "the following arguments are required: --data-dir"),
    ("paper-empty-data", PAPER + " --sigma 0.25", "no CIFAR-10 found under"),
    ("paper-imagenet-missing", "paper imagenet --sigma 0.25 --data-dir {bad}/empty-data --out-dir {done}/p", "no ImageNet folder"),
    ("paper-workers", PAPER + " --sigma 0.25 --workers -1", "workers must be a non-negative integer, got -1"),
    ("paper-device", PAPER + " --sigma 0.25 --device gpu0", "not a device name"),
    ("unknown-command", "serve", "invalid choice: 'serve'"),
]


@pytest.mark.parametrize("case,argv,expected", CASES, ids=[case for case, _, _ in CASES])
def test_every_bad_input_of_every_command_is_refused_in_one_line(ws, capsys, case, argv, expected):
    before = snapshot(ws["root"])
    code, err = run_cli(argv.format(**{k: str(v) for k, v in ws.items()}).split(), capsys)
    assert code not in (0, None), f"{case} was accepted"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{case}: expected one line, got {err!r}"
    assert lines[0].startswith("smoothcert"), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert snapshot(ws["root"]) == before, f"{case} changed or added files"


def test_every_command_has_bad_input_cases():
    commands = {argv.split()[0] for _, argv, _ in CASES}
    assert commands >= {"certify", "predict", "train", "demo", "analyze", "reproduce", "paper"}


def test_a_bad_input_run_as_a_program_prints_no_traceback(ws):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "smoothcert", "certify", "--checkpoint", str(ws["bad"] / "corrupt.pt"),
                             "--outfile", str(ws["done"] / "cert.tsv")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "fails its CRC-32 check" in result.stderr


@pytest.fixture(scope="module")
def smoothed(ws):
    return load_smoothed(ws["checkpoint"])[0]


def image() -> torch.Tensor:
    return load_dataset("mnist", "test")[0][0]


API_CASES = [
    ("sigma-zero", lambda ws, s: SmoothedClassifier(s.base_classifier, 10, 0.0), ValueError, "sigma must be a positive finite number, got 0.0"),
    ("sigma-nan", lambda ws, s: SmoothedClassifier(s.base_classifier, 10, math.nan), ValueError, "sigma must be a positive finite number, got nan"),
    ("classes", lambda ws, s: SmoothedClassifier(s.base_classifier, 1, 0.5), ValueError, "num_classes must be an integer of at least 2, got 1"),
    ("range", lambda ws, s: SmoothedClassifier(s.base_classifier, 10, 0.5, input_range=(1.0, 0.0)), ValueError, "low < high"),
    ("shape-batch", lambda ws, s: s.certify(image().unsqueeze(0), 10, 10, 0.01), ValueError, "takes inputs of shape (1, 28, 28)"),
    ("shape-channels", lambda ws, s: s.predict(torch.rand(3, 28, 28), 10, 0.01), ValueError, "takes inputs of shape (1, 28, 28)"),
    ("range-standardized", lambda ws, s: s.certify((image() - 0.1307) / 0.3081, 10, 10, 0.01), ValueError, "outside the expected range [0, 1]"),
    ("range-255", lambda ws, s: s.certify(image() * 255, 10, 10, 0.01), ValueError, "outside the expected range"),
    ("nan-input", lambda ws, s: s.certify(image().masked_fill(image() > 0.5, math.nan), 10, 10, 0.01), ValueError, "NaN or infinite"),
    ("integer-input", lambda ws, s: s.certify((image() * 255).to(torch.uint8), 10, 10, 0.01), TypeError, "floating-point"),
    ("samples", lambda ws, s: s.certify(image(), 0, 10, 0.01), ValueError, "positive integer"),
    ("alpha", lambda ws, s: s.predict(image(), 10, 1.5), ValueError, "alpha"),
    ("counts-negative", lambda ws, s: certify_from_counts([5, -1], [5, 5], 0.01, 0.5), ValueError, "counts0 must not be negative"),
    ("counts-length", lambda ws, s: t_certify_from_counts([5, 1], [5, 5, 1], 0.01, 0.5), ValueError, "counts"),
    ("predict-alpha", lambda ws, s: predict_from_counts([5, 1], 0.0), ValueError, "alpha"),
    ("pb-bound", lambda ws, s: t_certify_from_counts([5, 1], [5, 1], 0.01, 0.5, pb_bound="union"), ValueError, "pb_bound must be one of max, sum, got 'union'"),
    ("early-stop", lambda ws, s: s.certify_until(image(), 10, 100, 0.01, 0.5, early_stop="often"), ValueError,
     "early_stop must be one of sequence, checkpoints"),
    ("settings-pb-bound", lambda ws, s: CertifySettings(pb_bound="union").validate(), ValueError, "pb_bound must be one of max, sum"),
    ("certify-sigma", lambda ws, s: certify_from_counts([5, 1], [5, 1], 0.01, -1.0), ValueError, "sigma"),
    ("settings", lambda ws, s: CertifySettings(alpha=2, n=0).validate(), ValueError, "n must be a positive integer of at most 2**53, got 0; alpha must lie"),
    ("train-config", lambda ws, s: TrainConfig(sigma=-1, k=0).validate(), ValueError, "sigma must be a positive finite number, got -1; k must be a positive integer, got 0"),
    ("train-arch", lambda ws, s: preset("mnist", arch="vgg").validate(), ValueError, "arch must be one of small_cnn, small_cnn_bn, cifar_resnet20"),
    ("preset-field", lambda ws, s: preset("mnist", noise=0.5), ValueError, "unknown training options ['noise']"),
    ("dataset", lambda ws, s: load_dataset("svhn", "test"), ValueError, "unknown dataset 'svhn'"),
    ("split", lambda ws, s: load_dataset("mnist", "validation"), ValueError, "split must be one of"),
    ("data-folder", lambda ws, s: load_dataset("cifar10", "test", ws["bad"] / "nowhere"), FileNotFoundError, "no CIFAR-10 found"),
    ("model", lambda ws, s: build_model("vgg", 10, [0.5], [0.5]), ValueError, "unknown architecture 'vgg'"),
    ("checkpoint", lambda ws, s: load_classifier(ws["bad"] / "truncated.pt"), ValueError, "truncated or damaged"),
    ("checkpoint-sigma", lambda ws, s: load_classifier(ws["checkpoint"], sigma=math.inf), ValueError, "sigma must be a positive finite"),
    ("outputs", lambda ws, s: certify_dataset(s, load_dataset("mnist", "test"), ws["done"] / "cert.tsv",
                                               CertifySettings(n=100, max_count=2)), ValueError, "already holds results"),
    ("analyze", lambda ws, s: analyze_files([ws["done"] / "cert.tsv"], radii=[math.nan]), ValueError, "a radius must be a non-negative finite number, got nan"),
    ("analyze-alpha", lambda ws, s: analyze_files([ws["done"] / "cert.tsv"], alpha=0.5), ValueError, "records certificates valid at level"),
    ("results", lambda ws, s: read_results(ws["bad"] / "none.tsv"), FileNotFoundError, "no results file"),
    ("float64-input", lambda ws, s: s.certify(image().double(), 10, 10, 0.01), TypeError, "the classifier's weights are torch.float32"),
    ("empty-input", lambda ws, s: s.predict(torch.zeros(0), 10, 0.01), ValueError, "x is empty"),
    ("counts-overflow", lambda ws, s: certify_from_counts([5, 1], [2**64, 3], 0.01, 0.5), ValueError, "at most 2**53"),
    ("counts-float-overflow", lambda ws, s: certify_from_counts([5, 1], [1e300, 3.0], 0.01, 0.5), ValueError, "at most 2**53"),
    ("fifo-output", lambda ws, s: certify_dataset(s, load_dataset("mnist", "test"), ws["bad"] / "fifo.tsv", CertifySettings(n=100, max_count=1)),
     ValueError, "is not a regular file"),
]


@pytest.mark.parametrize("case,call,error,expected", API_CASES, ids=[case for case, *_ in API_CASES])
def test_every_bad_input_of_the_api_is_refused_in_one_line(ws, smoothed, case, call, error, expected):
    before = snapshot(ws["root"])
    with pytest.raises(error) as caught:
        call(ws, smoothed)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(ws["root"]) == before
