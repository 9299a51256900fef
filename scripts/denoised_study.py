"""Denoised smoothing on colour images (issue 26): a ResNet-20 trained without noise on the
CIFAR-10 subset (the CIFAR study's recipe: batch 100, 7 epochs, lr / 10 after epoch 5), smoothed
(a) as it is, (b) behind an MSE denoiser, (c) behind that denoiser fine-tuned with the stability
objective (Salman et al.'s Stab+MSE), at sigma 0.25 and 0.5; certified with CERTIFY on every 8th
test image, n0 = 100, n = 1,000, alpha = 0.001, as the CIFAR study certifies its Basic runs (d).

    python scripts/denoised_study.py --data-dir DATA --out runs/denoised-cifar10 [--quick]

Every step resumes from what its folder holds (checkpoints, TSVs); a finished step is skipped.
Prints and writes ``OUT/summary.md``: certified accuracy at 0, 0.25, ..., 1.0, ACR, the
denoiser's training time and the median certification time per image.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from smoothcert.analysis.accuracy import summarize
from smoothcert.analysis.tables import markdown_table
from smoothcert.denoising.config import DenoiserConfig
from smoothcert.denoising.loop import train_denoiser
from smoothcert.jobs.evaluate import certify_dataset
from smoothcert.models.checkpoint import load_checkpoint
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.smoothing.checkpoint import open_checkpoint
from smoothcert.storage.atomic import write_text_atomic
from smoothcert.storage.tsv import read_results
from smoothcert.studies.reproduce import CIFAR_TRAIN
from smoothcert.training.config import preset
from smoothcert.training.loop import train

RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
DENOISERS = {"mse": dict(objective="mse", epochs=10), "mse+stab": dict(objective="stab", init="mse", lr=1e-4, epochs=5)}
"""The denoisers of each sigma: MSE for 10 epochs; then, as Salman et al.'s Stab+MSE, a new run
from the MSE denoiser's weights: 5 epochs of the stability objective with a new Adam at 1e-4."""


def _trained(config, resume_from: Path, trainer) -> Path:
    """Train ``config`` with ``trainer`` unless its checkpoint holds every epoch; resume it if partial."""
    path = resume_from / "checkpoint.pt"
    if path.is_file() and int(load_checkpoint(path)["epoch"]) >= config.epochs:
        return path
    return trainer(config, resume=path.is_file(), progress=True)  # epoch lines; bars only on a terminal


def _certified(checkpoint: Path, outfile: Path, settings: CertifySettings, data_dir: str, sigma: float | None) -> Path:
    opened = open_checkpoint(checkpoint, "cpu", "test", data_dir, sigma=sigma)
    certify_dataset(opened.smoothed, opened.data, outfile, settings, progress=True, metadata=opened.record, resume=outfile.is_file())
    return outfile


def _seconds(log: Path) -> float:
    with log.open() as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def run(data_dir: str, out: Path, quick: bool) -> str:
    train_settings = dict(CIFAR_TRAIN, epochs=1 if quick else 7, lr_step=1 if quick else 5)
    settings = CertifySettings(n0=100, n=200 if quick else 1000, alpha=0.001, batch_size=1100, method="certify", skip=30 if quick else 8)
    config = preset("cifar10", method="clean", seed=0, data_dir=data_dir, out_dir=str(out / "classifier"), **train_settings)
    classifier = _trained(config, out / "classifier", train)
    rows, costs = [], []
    for sigma in (0.25, 0.5):
        folder = out / f"s{sigma:g}"
        results = {"as it is": _certified(classifier, folder / "plain.tsv", settings, data_dir, sigma)}
        for name, recipe in DENOISERS.items():
            recipe = dict(recipe, epochs=1) if quick else dict(recipe)
            if "init" in recipe:
                recipe["init_denoiser"] = str((folder / recipe.pop("init") / "checkpoint.pt").resolve())
            denoiser_config = DenoiserConfig(str(classifier.resolve()), sigma=sigma, data_dir=data_dir, out_dir=str(folder / name), **recipe)
            denoiser = _trained(denoiser_config, folder / name, train_denoiser)
            results[f"{name} denoiser"] = _certified(denoiser, folder / f"{name}.tsv", settings, data_dir, None)
            fine_tuning = " (from the mse denoiser)" if denoiser_config.init_denoiser else ""
            costs.append(f"| {sigma:g} | {name} denoiser: training{fine_tuning} | {_seconds(folder / name / 'log.csv'):.0f} |")
        for label, path in results.items():
            certified = read_results(path)
            rows.append(summarize(certified, f"sigma={sigma:g}, {label}", RADII, settings.alpha))
            per_image = statistics.median(r["time"] for r in certified)  # the median: a pause of the study shows in one row only
            costs.append(f"| {sigma:g} | {label}: certification | {per_image:.2f} s per image (median) |")
    return markdown_table(rows) + "\n\n| sigma | step | seconds |\n|---|---|---|\n" + "\n".join(costs) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the folder holding cifar-10-batches-py")
    parser.add_argument("--out", default="runs/denoised-cifar10")
    parser.add_argument("--quick", action="store_true", help="one epoch each, n = 200, every 30th test image")
    args = parser.parse_args()
    summary = run(args.data_dir, Path(args.out), args.quick)
    write_text_atomic(Path(args.out) / "summary.md", summary)
    print(summary)


if __name__ == "__main__":
    main()
