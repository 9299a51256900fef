"""Does faithful ADRE diverge, and what holds it? Trains the faithful objective (eq. 5, no cap)
under an ablation grid and reports, per run, when it diverged or collapsed and where its
divergence diagnostics ended (share of training examples with every noisy copy right, largest
logit, ``l_adre``, accuracy under noise).

    python scripts/adre_divergence.py --out runs/divergence-mnist              # embedded digits
    python scripts/adre_divergence.py --out runs/divergence-cifar10 --dataset cifar10 --data-dir DATA \\
        --archs cifar_resnet20 --epochs 60 --lr-step 20
    python scripts/adre_divergence.py --out runs/control-mnist --lam 0      # the control: l_per alone

Every run lives in ``OUT/<cell>/seed<s>`` (``log.csv`` per epoch, checkpoint); a finished run is
read back, an unfinished one resumed. Printed and written to ``OUT/summary.md``: one row per run.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

from smoothcert.storage.atomic import write_text_atomic
from smoothcert.training.config import preset
from smoothcert.training.diagnostics import COLLAPSE_SHARE, TrainingDiverged
from smoothcert.training.loop import train

FIELDS = ("all_correct", "max_logit", "l_adre", "train_noisy_acc", "test_noisy_acc")


def run(args: argparse.Namespace, arch: str, weight_decay: float, schedule: str, seed: int) -> dict:
    """Train (or resume, or read back) one run; its outcome and last epoch's diagnostics."""
    name = f"{arch}-wd{weight_decay:g}-{schedule}"
    out = Path(args.out) / name / f"seed{seed}"
    lr_step = args.lr_step if schedule == "step" else args.epochs
    config = preset(args.dataset, arch=arch, method="adre" if args.lam else "basic", sigma=args.sigma, k=args.k, lam=args.lam, single_draw_per=True,
                    epochs=args.epochs, lr_step=lr_step, weight_decay=weight_decay, seed=seed, data_dir=args.data_dir,
                    workers=0, out_dir=str(out))
    diverged = False
    try:
        train(config, resume=(out / "checkpoint.pt").is_file(), progress=False)
    except TrainingDiverged:
        diverged = True
    with (out / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    accuracy = [float(r["train_noisy_acc"]) for r in rows]
    collapsed = next((i + 1 for i in range(1, len(rows)) if accuracy[i] < COLLAPSE_SHARE * max(accuracy[:i])), None)
    outcome = (f"non-finite loss in epoch {len(rows) + 1}" if diverged
               else f"collapsed in epoch {collapsed}" if collapsed else "stable")
    last = rows[-1] if rows else {}
    return {"cell": name, "seed": seed, "epochs": len(rows), "outcome": outcome, "peak_all_correct":
            max((float(r["all_correct"]) for r in rows), default=float("nan")),
            **{key: float(last.get(key, "nan")) for key in FIELDS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10"])
    parser.add_argument("--data-dir")
    parser.add_argument("--archs", nargs="+", default=["small_cnn", "small_cnn_bn"])
    parser.add_argument("--weight-decays", type=float, nargs="+", default=[5e-4, 0.0])
    parser.add_argument("--schedules", nargs="+", default=["step", "constant"], choices=["step", "constant"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--lam", type=float, default=0.2, help="0 trains the control: the same l_per without the ADRE term")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr-step", type=int, default=10)
    args = parser.parse_args()
    results = [run(args, *cell) for cell in itertools.product(args.archs, args.weight_decays, args.schedules, args.seeds)]
    header = ["run", "epochs", "outcome", "peak all-copies-right share", *FIELDS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        lines.append(f"| {r['cell']} seed {r['seed']} | {r['epochs']} | {r['outcome']} | {r['peak_all_correct']:.3f} | "
                     + " | ".join(f"{r[key]:.3g}" for key in FIELDS) + " |")
    table = "\n".join(lines)
    write_text_atomic(Path(args.out) / "summary.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
