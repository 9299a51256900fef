"""The ``smoothcert`` argument parser: one function per command. Training and certification
options are generated from :class:`~smoothcert.training.config.TrainConfig` and
:class:`~smoothcert.smoothing.certification.CertifySettings` (:mod:`smoothcert.cli.options`),
imported by the commands that take them, so that ``smoothcert analyze`` runs without torch."""

from __future__ import annotations

import argparse

from smoothcert.cli.options import add_options


class _Parser(argparse.ArgumentParser):
    """Reports a usage error in one line (the problem, and where to read what is expected)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _add_demo(parser: argparse.ArgumentParser) -> None:
    from smoothcert.smoothing.certification import CertifySettings
    from smoothcert.studies import demo
    from smoothcert.training.config import TrainConfig

    add_options(parser, TrainConfig, ["sigma", "epochs", "seed"], defaults=demo.TRAIN)
    add_options(parser, TrainConfig, ["lam"], defaults=demo.ADRE)
    add_options(parser, CertifySettings, ["n", "max_count"], defaults={"n": demo.CERTIFY.n})
    parser.add_argument("--faithful-adre", action="store_true", help="train ADRE without the per-example cap (it diverges on this data)")
    parser.add_argument("--out-dir", default="runs/demo")
    parser.add_argument("--quiet", action="store_true")


def _add_train(parser: argparse.ArgumentParser) -> None:
    from smoothcert.training.config import PRESETS, TrainConfig

    parser.add_argument("--preset", default="mnist",
                        help=f"{', '.join(PRESETS)}: the embedded digits on a CPU (ours), or the paper's recipes (docs/guide/training.md); "
                             "each option below shows its default and the presets that change it; a method of the field starts "
                             "from its authors' settings (k, lambda, ...) at the nearest sigma")
    add_options(parser, TrainConfig, unset=True, presets={name: values for name, values in PRESETS.items() if values})
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir")
    parser.add_argument("--quiet", action="store_true")


def _add_train_denoiser(parser: argparse.ArgumentParser) -> None:
    from smoothcert.denoising.config import DenoiserConfig

    add_options(parser, DenoiserConfig)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir")
    parser.add_argument("--quiet", action="store_true")


def _add_selection(parser: argparse.ArgumentParser) -> None:
    """What ``certify``, ``predict`` and ``votes`` read and write. ``--sigma`` here is not the
    training setting: it overrides the noise level a checkpoint records (or gives the one a
    released checkpoint does not record)."""
    from smoothcert.training.config import TrainConfig

    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint written by smoothcert train, or one released by Cohen et al. or Salman et al.")
    parser.add_argument("--sigma", type=float,
                        help="noise level to smooth at (default: the checkpoint's; required for released checkpoints, which do not record it)")
    parser.add_argument("--dataset", help="the data the checkpoint classifies (default: the checkpoint's, or for a released one "
                        "cifar10/imagenet by its architecture)")
    parser.add_argument("--outfile", required=True, help="the TSV to write; OUTFILE.json beside it records the settings")
    parser.add_argument("--resume", action="store_true", help="continue OUTFILE if it holds rows (the settings must match its OUTFILE.json)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    add_options(parser, TrainConfig, ["data_dir", "device"])
    parser.add_argument("--diffusion", help="a DDPM folder (unet/ and scheduler/, as diffusers saves them): smooth the classifier behind "
                        "its one-shot denoiser at --sigma (Carlini et al. 2023); needs pip install 'smoothcert[diffusion]'")
    parser.add_argument("--shard", help="K/N: this job takes the K-th of every N selected examples, as one of N independent jobs "
                        "(a Slurm job array; no process group); smoothcert merge joins their files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_certify(parser: argparse.ArgumentParser) -> None:
    from smoothcert.smoothing.certification import CertifySettings

    _add_selection(parser)
    add_options(parser, CertifySettings)
    speed = parser.add_argument_group("faster forward passes (each may change predictions; recorded in OUTFILE.json)")
    speed.add_argument("--fast", action="store_true", help="all of the below (bf16 only where the device has bfloat16 units)")
    speed.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolutions")
    speed.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    speed.add_argument("--compile", action="store_true", help="torch.compile the classifier")
    speed.add_argument("--bf16", action="store_true", help="bfloat16 autocast (a GPU with bfloat16 units, or a CPU with AVX512-BF16/AMX, "
                       "where it is emulated)")
    speed.add_argument("--tf32", action="store_true", help="TF32 convolutions and matrix products on CUDA (off unless asked for)")


def _add_predict(parser: argparse.ArgumentParser) -> None:
    from smoothcert.smoothing.certification import CertifySettings

    _add_selection(parser)
    add_options(parser, CertifySettings, ["n", "alpha", "batch_size", "skip", "max_count", "seed"])


def _add_votes(parser: argparse.ArgumentParser) -> None:
    from smoothcert.smoothing.certification import CertifySettings

    _add_selection(parser)
    parser.set_defaults(split="train")
    add_options(parser, CertifySettings, ["n", "batch_size", "seed"], defaults={"n": 10_000})


def _add_analyze(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="TSVs written by smoothcert certify or by Cohen et al.'s certify.py")
    parser.add_argument("--labels", nargs="+", help="one name per file (default: the file names)")
    parser.add_argument("--radii", type=float, nargs="+", help="default: 0, 0.25, ..., 3.0 as in the paper's Table 1")
    parser.add_argument("--out-dir", default="analysis", help="where NAME.md, .tex, .csv, .png and .pdf go")
    parser.add_argument("--name", default="analysis")
    parser.add_argument("--paired", action="store_true", help="plot consecutive files as solid/dashed pairs of one color")
    parser.add_argument("--alpha", type=float,
                        help="the level of certificates whose rows record none (Cohen et al.'s files; default 0.001); "
                             "files that record a level use it, and a different --alpha is refused")
    parser.add_argument("--rho", type=float, default=0.001, help="the lower bound holds with probability 1 - rho")


def _add_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="certification logs (smoothcert's or Cohen et al.'s TSVs) made at fixed n")
    parser.add_argument("--sigma", type=float, required=True, help="the noise level the logs were certified at")
    parser.add_argument("--n", type=int, default=100_000, help="the n the logs were certified with (default 100,000)")
    parser.add_argument("--alpha", type=float, default=0.001, help="the logs' alpha (default 0.001)")
    parser.add_argument("--radii", type=float, nargs="+", help="the grid (default 0.25, 0.5, ... up to what n can certify)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated draws")


def _add_merge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", help="the results files of the jobs --shard 1/N ... N/N")
    parser.add_argument("--outfile", required=True, help="the merged TSV (OUTFILE.json beside it: the shards' common settings)")


def _add_study(parser: argparse.ArgumentParser, quick: str, out_dir: str) -> None:
    """The options of a study command: dataset and folder, ``--quick``, where its runs go."""
    parser.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist",
                        help="mnist: the embedded digits, small CNN (default); cifar10: read from --data-dir, ResNet-20")
    parser.add_argument("--data-dir", help="the folder holding cifar-10-batches-py (with --dataset cifar10)")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out-dir", help=f"default: {out_dir}, with -quick appended for --quick")
    parser.add_argument("--quiet", action="store_true")


def _add_reproduce(parser: argparse.ArgumentParser) -> None:
    _add_study(parser, "a few minutes' version of the study (fewer cells, seeds, samples)",
               "runs/reproduce (mnist) or runs/reproduce-cifar10")


def _add_compare(parser: argparse.ArgumentParser) -> None:
    _add_study(parser, "a few minutes' version (one epoch, 50 test images, few votes)", "runs/compare-DATASET")


def _add_paper(parser: argparse.ArgumentParser) -> None:
    from smoothcert.training.config import TrainConfig

    parser.add_argument("dataset", choices=["cifar10", "imagenet"])
    add_options(parser, TrainConfig, ["sigma", "lam", "data_dir", "device", "workers"], unset=True, required=("sigma", "data_dir"),
                notes={"lam": "leave out for the Basic row (ADRE_REG's lambda of the cell otherwise)",
                       "workers": "default: the preset's"})
    parser.add_argument("--out-dir", help="default: runs/paper/DATASET-sSIGMA-(basic|lLAM)")
    parser.add_argument("--quiet", action="store_true")


COMMANDS = {
    "demo": ("train Basic and ADRE_REG on the embedded MNIST digits, certify, print the table", _add_demo),
    "train": ("train a base classifier", _add_train),
    "train-denoiser": ("train a denoiser for a frozen classifier (denoised smoothing); certify its checkpoint", _add_train_denoiser),
    "certify": ("certify a dataset split with CERTIFY and/or T-CERTIFY", _add_certify),
    "predict": ("Cohen et al.'s PREDICT over a dataset split", _add_predict),
    "votes": ("the smoothed prediction (votes over n noisy copies) of every example of a split, for CAT-RS", _add_votes),
    "merge": ("join the files of independent jobs (--shard K/N) into the file one process writes", _add_merge),
    "analyze": ("certified accuracy tables and curves from certification TSVs", _add_analyze),
    "replay": ("how many samples grid certification would need on a fixed-n log's own probabilities, and its curve", _add_replay),
    "reproduce": ("the study: Table 1 and Figures 1-2 analogs on the embedded MNIST digits or CIFAR-10", _add_reproduce),
    "compare": ("the field's methods side by side at one sigma: certified accuracy, ACR, training time", _add_compare),
    "paper": ("train and certify one cell of the paper's Table 1 at full scale (GPU)", _add_paper),
}
"""Each command: its one-line help and the function that adds its options."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every ``smoothcert`` command, with the options of ``command`` only when it is
    given (so that ``smoothcert analyze`` never imports the torch-side settings)."""
    parser = _Parser(prog="smoothcert", description="Certified l2 robustness by randomized smoothing.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (text, add) in COMMANDS.items():
        sub = commands.add_parser(name, help=text)
        if command in (None, name):
            add(sub)
    return parser
