"""``smoothcert <command>``: a thin command line over the library (``smoothcert <command> -h``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from smoothcert.certify import PAPER_GRID

TRAIN_OPTIONS = {
    "arch": (str, "architecture: small_cnn, small_cnn_bn, cifar_resnet20/56/110, resnet50"),
    "method": (str, "basic, adre, smoothadv or adre_adv"),
    "sigma": (float, "noise level"),
    "k": (int, "noisy copies per example"),
    "lam": (float, "ADRE weight lambda"),
    "adre_cap": (float, "bound l_adre per example (e.g. 6.9 = -log 0.001); off by default"),
    "eps": (float, "l2 radius of the training attack (smoothadv, adre_adv)"),
    "attack_steps": (int, "PGD steps of the training attack"),
    "eps_warmup": (int, "epochs over which the attack radius ramps linearly from 0 to eps (Salman et al.'s --warmup; 0 = off)"),
    "epochs": (int, None), "batch_size": (int, "global batch size"), "lr": (float, None), "momentum": (float, None),
    "weight_decay": (float, None), "label_smoothing": (float, None), "schedule": (str, "step or cosine"),
    "lr_step": (int, "epochs between learning-rate drops (step)"), "lr_gamma": (float, "learning-rate drop factor (step)"),
    "warmup_epochs": (int, "linear warm-up epochs (cosine)"), "seed": (int, None), "workers": (int, "data-loading processes"),
    "data_dir": (str, "dataset folder (cifar10, imagenet)"), "out_dir": (str, "where checkpoint.pt and log.csv go"),
    "device": (str, "cpu, cuda, cuda:1, ... (default: cuda if available)"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint written by smoothcert train, or one released by Cohen et al. or Salman et al.")
    parser.add_argument("--sigma", type=float,
                        help="noise level to smooth at (default: the checkpoint's; required for released checkpoints, which do not record it)")
    parser.add_argument("--dataset", help="the data the checkpoint classifies (default: the checkpoint's, or for a released one "
                        "cifar10/imagenet by its architecture)")
    parser.add_argument("--outfile", required=True, help="the TSV to write; OUTFILE.json beside it records the settings")
    parser.add_argument("--resume", action="store_true", help="continue OUTFILE if it holds rows (the settings must match its OUTFILE.json)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--data-dir", help="dataset folder, if the checkpoint's dataset is read from one")
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--batch", type=int, default=1000, help="noisy copies per forward pass")
    parser.add_argument("--skip", type=int, default=1, help="certify every SKIP-th example (the reference code uses 20 on CIFAR-10, 100 on ImageNet)")
    parser.add_argument("--max", "--max-count", type=int, dest="max_count",
                        help="at most this many examples (a count, not an index; under torchrun write --max-count)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="default: cuda if available")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class _Parser(argparse.ArgumentParser):
    """Reports a usage error in one line (the problem, and where to read what is expected)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smoothcert", description="Certified l2 robustness by randomized smoothing.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train Basic and ADRE_REG on the embedded MNIST digits, certify, print the table")
    demo.add_argument("--sigma", type=float, default=0.5)
    demo.add_argument("--lam", type=float, default=0.2)
    demo.add_argument("--epochs", type=int, default=15)
    demo.add_argument("--n", type=int, default=2000)
    demo.add_argument("--max", type=int, dest="max_count", help="certify this many test images spread over the classes (default: all 1,000)")
    demo.add_argument("--faithful-adre", action="store_true", help="train ADRE without the per-example cap (it diverges on this data)")
    demo.add_argument("--out-dir", default="runs/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true")

    train = commands.add_parser("train", help="train a base classifier")
    train.add_argument("--preset", default="mnist", help="mnist (embedded digits, CPU; ours), cifar10 or imagenet (the paper's recipes, see README)")
    for name, (kind, text) in TRAIN_OPTIONS.items():
        train.add_argument(_flag(name), type=kind, help=text)
    train.add_argument("--single-draw-per", action="store_true", help="l_per from one random noisy copy (the paper's Table 1 variant)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir")
    train.add_argument("--quiet", action="store_true")

    certify = commands.add_parser("certify", help="certify a dataset split with CERTIFY and/or T-CERTIFY")
    _add_selection(certify)
    certify.add_argument("--n0", "--N0", type=int, default=100, help="selection samples (Cohen et al.'s N0)")
    certify.add_argument("--n", "--N", type=int, default=100_000, dest="n",
                         help="estimation samples (Cohen et al.'s N; under torchrun write --N, since torchrun takes --n for its own)")
    certify.add_argument("--method", default="certify", choices=["certify", "tcertify", "both", "all"],
                         help="both: the two algorithms on the same noise, written to OUTFILE's .certify.tsv and .tcertify.tsv; "
                              "all: also the paper's exact T-CERTIFY (--selection paper --pb-bound sum) in .tcertify_paper.tsv")
    certify.add_argument("--selection", default="corrected", choices=["corrected", "paper", "first_stage"],
                         help="how T-CERTIFY's best split stays valid (see README)")
    certify.add_argument("--abstain", default="half", choices=["half", "runner_up"])
    certify.add_argument("--pb-bound", default="max", choices=["max", "sum"],
                         help="T-CERTIFY's bound on pB: max (Clopper-Pearson on the largest other count, never looser) or sum "
                              "(eq. 14; with --selection paper, the paper's algorithm exactly)")
    certify.add_argument("--grid", type=float, nargs="+", default=list(PAPER_GRID), help="T-CERTIFY's alpha'/alpha grid")
    certify.add_argument("--target-radius", type=float,
                         help="CERTIFY with early stopping: stop sampling an input once it certifies this radius or cannot")
    certify.add_argument("--early-stop", default="sequence", choices=["sequence", "checkpoints"],
                         help="how early stopping stays valid: a confidence sequence checked after every 100 samples, or "
                              "Clopper-Pearson bounds at --stages fixed checkpoints")
    certify.add_argument("--stages", type=int, default=5, help="checkpoints of --early-stop checkpoints (n/16, n/8, ..., n)")
    speed = certify.add_argument_group("faster forward passes (each may change predictions; recorded in OUTFILE.json)")
    speed.add_argument("--fast", action="store_true", help="all of the below (bf16 only where the device has bfloat16 units)")
    speed.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolutions")
    speed.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    speed.add_argument("--compile", action="store_true", help="torch.compile the classifier")
    speed.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CUDA, or a CPU with AVX512-BF16/AMX; emulated elsewhere)")

    analyze = commands.add_parser("analyze", help="certified accuracy tables and curves from certification TSVs")
    analyze.add_argument("files", nargs="+", help="TSVs written by smoothcert certify or by Cohen et al.'s certify.py")
    analyze.add_argument("--labels", nargs="+", help="one name per file (default: the file names)")
    analyze.add_argument("--radii", type=float, nargs="+", help="default: 0, 0.25, ..., 3.0 as in the paper's Table 1")
    analyze.add_argument("--out-dir", default="analysis", help="where NAME.md, .tex, .csv, .png and .pdf go")
    analyze.add_argument("--name", default="analysis")
    analyze.add_argument("--paired", action="store_true", help="plot consecutive files as solid/dashed pairs of one color")
    analyze.add_argument("--alpha", type=float,
                         help="the level of certificates whose rows record none (Cohen et al.'s files; default 0.001); "
                              "files that record a level use it, and a different --alpha is refused")
    analyze.add_argument("--rho", type=float, default=0.001, help="the lower bound holds with probability 1 - rho")

    reproduce = commands.add_parser("reproduce", help="the study: Table 1 and Figures 1-2 analogs on the embedded MNIST digits or CIFAR-10")
    reproduce.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist",
                           help="mnist: the embedded digits, small CNN (default); cifar10: read from --data-dir, ResNet-20")
    reproduce.add_argument("--data-dir", help="the folder holding cifar-10-batches-py (with --dataset cifar10)")
    reproduce.add_argument("--quick", action="store_true", help="a few minutes' version of the study (fewer cells, seeds, samples)")
    reproduce.add_argument("--out-dir", help="default: runs/reproduce (mnist) or runs/reproduce-cifar10, with -quick appended for --quick")
    reproduce.add_argument("--quiet", action="store_true")

    paper = commands.add_parser("paper", help="train and certify one cell of the paper's Table 1 at full scale (GPU)")
    paper.add_argument("dataset", choices=["cifar10", "imagenet"])
    paper.add_argument("--sigma", type=float, required=True)
    paper.add_argument("--lam", type=float, help="ADRE_REG's lambda; leave out for the Basic row")
    paper.add_argument("--data-dir", required=True)
    paper.add_argument("--out-dir", help="default: runs/paper/DATASET-sSIGMA-(basic|lLAM)")
    paper.add_argument("--device")
    paper.add_argument("--workers", type=int)
    paper.add_argument("--quiet", action="store_true")

    predict = commands.add_parser("predict", help="Cohen et al.'s PREDICT over a dataset split")
    _add_selection(predict)
    predict.add_argument("--n", "--N", type=int, default=100_000, dest="n", help="samples (under torchrun write --N)")
    return parser


def _smoothed(args: argparse.Namespace, device, fast=None):
    """The smoothed classifier of ``--checkpoint``, the split to evaluate, and what the results
    file records about them."""
    from smoothcert.checkpoint import load_smoothed
    from smoothcert.data import load_dataset
    from smoothcert.evaluate import source_record
    from smoothcert.fast import apply_fast_options, describe

    smoothed, entries = load_smoothed(args.checkpoint, device, sigma=args.sigma, dataset=args.dataset)
    if fast is not None:
        smoothed.base_classifier = apply_fast_options(smoothed.base_classifier, fast)
    dataset = load_dataset(entries["dataset"], args.split, args.data_dir)
    metadata = source_record(args.checkpoint, entries["dataset"], args.split, device)
    if fast is not None:
        metadata["fast"] = describe(fast)
    return smoothed, dataset, metadata


def _fast_options(args: argparse.Namespace, device):
    from smoothcert.fast import FastOptions

    if args.fast:
        return FastOptions.all_for(device)
    return FastOptions(fold_bn=args.fold_bn, channels_last=args.channels_last, compile=args.compile, bf16=args.bf16)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, FloatingPointError) as error:  # bad input, files, a diverged training run
        print(f"smoothcert {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from smoothcert.demo import DemoSettings, run_demo

        started = time.perf_counter()
        settings = DemoSettings(sigma=args.sigma, lam=args.lam, epochs=args.epochs, n=args.n, max_count=args.max_count,
                                adre_cap=None if args.faithful_adre else 6.9, seed=args.seed, out_dir=args.out_dir)
        table, _ = run_demo(settings, progress=not args.quiet)
        print(f"\nApproximate certified accuracy on the embedded MNIST test digits, sigma = {settings.sigma}, "
              f"n0 = {settings.n0}, n = {settings.n}, alpha = {settings.alpha} (T-CERTIFY: corrected grid, valid at alpha)\n")
        print(table)
        if settings.adre_cap is not None:
            print("\nADRE_REG bounds l_adre per example at 6.9: the paper's objective is unbounded below and collapses on "
                  "these digits (run with --faithful-adre to see it).")
        print(f"\nwall time {time.perf_counter() - started:.0f} s; results in {settings.out_dir}/")
        return 0
    if args.command == "train":
        from smoothcert.train import preset, train

        overrides = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
        if args.single_draw_per:
            overrides["single_draw_per"] = True
        path = train(preset(args.preset, **overrides), resume=args.resume, progress=not args.quiet)
        print(f"checkpoint: {path}")
        return 0
    if args.command == "certify":
        from smoothcert.distributed import setup_distributed, teardown
        from smoothcert.evaluate import CertifySettings, certify_dataset

        settings = CertifySettings(n0=args.n0, n=args.n, alpha=args.alpha, batch_size=args.batch, method=args.method, grid=args.grid,
                                   selection=args.selection, abstain=args.abstain, pb_bound=args.pb_bound, skip=args.skip,
                                   max_count=args.max_count, seed=args.seed,
                                   target_radius=args.target_radius, early_stop=args.early_stop,
                                   stages=args.stages).validate()
        env = setup_distributed(args.device)
        fast = _fast_options(args, env.device)
        smoothed, dataset, metadata = _smoothed(args, env.device, fast)
        paths = certify_dataset(smoothed, dataset, args.outfile, settings, progress=not args.quiet and env.main, rank=env.rank,
                                world=env.world, metadata=metadata, resume=args.resume)
        teardown(env)
        if env.main:
            for path in paths.values():
                print(f"wrote {path}")
        return 0
    if args.command == "analyze":
        from smoothcert.analyze import TABLE_RADII, analyze_files, markdown_table

        summaries, written = analyze_files(args.files, args.labels, args.out_dir, tuple(args.radii or TABLE_RADII),
                                           args.alpha, args.rho, args.paired, args.name)
        print("Approximate certified accuracy (estimates: every certificate counted as right); lower bounds on the true "
              f"certified accuracy, valid with probability 1 - rho = {1 - args.rho:g}, are in {args.name}.csv\n")
        print(markdown_table(summaries))
        print("\nwrote " + ", ".join(str(p) for p in written))
        return 0
    if args.command == "reproduce":
        from smoothcert.reproduce import run_study, study_plan

        if args.dataset == "cifar10" and not args.data_dir:
            raise ValueError("--dataset cifar10 reads CIFAR-10 from a folder: pass --data-dir (the folder holding cifar-10-batches-py)")
        default = "runs/reproduce" + ("-cifar10" if args.dataset == "cifar10" else "") + ("-quick" if args.quick else "")
        written = run_study(study_plan(args.dataset, args.quick), args.out_dir or default, progress=not args.quiet,
                            data_dir=args.data_dir)
        for table in ("table1", "figure1"):
            print(f"\n{table}:\n{written[f'{table}.md'].read_text()}")
        print("wrote " + ", ".join(str(p) for p in written.values()))
        return 0
    if args.command == "paper":
        from smoothcert.analyze import analyze_files, markdown_table
        from smoothcert.paper import PAPER_LABELS, cell_certify_settings, cell_config
        from smoothcert.pipeline import train_and_certify

        tag = "basic" if args.lam is None else f"l{args.lam:g}"
        extra = {key: value for key, value in (("device", args.device), ("workers", args.workers)) if value is not None}
        config = cell_config(args.dataset, args.sigma, args.lam, args.data_dir,
                             args.out_dir or f"runs/paper/{args.dataset}-s{args.sigma:g}-{tag}", **extra)
        paths = train_and_certify(config, cell_certify_settings(args.dataset), progress=not args.quiet)
        summaries, _ = analyze_files(list(paths.values()), [PAPER_LABELS[name] for name in paths])
        print("Approximate certified accuracy (estimates; each row's certificates hold at the level it names)\n")
        print(markdown_table(summaries))
        return 0
    if args.command == "predict":
        from smoothcert.distributed import resolve_device
        from smoothcert.evaluate import predict_dataset

        smoothed, dataset, metadata = _smoothed(args, resolve_device(args.device))
        path = predict_dataset(smoothed, dataset, args.outfile, args.n, args.alpha, args.batch, args.skip, args.max_count, args.seed,
                               progress=not args.quiet, metadata=metadata, resume=args.resume)
        print(f"wrote {path}")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
