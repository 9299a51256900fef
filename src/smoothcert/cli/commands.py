"""What each ``smoothcert`` command does: a thin layer over the library, one function per command.
Each imports what it needs when it runs, so that ``smoothcert analyze`` never imports torch;
process groups are created and destroyed here, by the commands that run under ``torchrun``."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from smoothcert.cli.options import chosen_values


def demo(args: argparse.Namespace) -> int:
    from smoothcert.studies.demo import ADRE, CERTIFY, TRAIN, DemoSettings, run_demo

    started = time.perf_counter()
    settings = DemoSettings(train={**TRAIN, "sigma": args.sigma, "epochs": args.epochs, "seed": args.seed},
                            adre={**ADRE, "lam": args.lam, "adre_cap": None if args.faithful_adre else ADRE["adre_cap"]},
                            certify=replace(CERTIFY, n=args.n, max_count=args.max_count, seed=args.seed), out_dir=args.out_dir)
    table, _ = run_demo(settings, progress=not args.quiet)
    certify = settings.certify
    print(f"\nApproximate certified accuracy on the embedded MNIST test digits, sigma = {args.sigma}, "
          f"n0 = {certify.n0}, n = {certify.n}, alpha = {certify.alpha} (T-CERTIFY: corrected grid, valid at alpha)\n")
    print(table)
    if not args.faithful_adre:
        print(f"\nADRE_REG bounds l_adre per example at {ADRE['adre_cap']}: the paper's objective is unbounded below and collapses "
              "on these digits (run with --faithful-adre to see it).")
    print(f"\nwall time {time.perf_counter() - started:.0f} s; results in {settings.out_dir}/")
    return 0


def train(args: argparse.Namespace) -> int:
    from smoothcert.runtime.distributed import process_group
    from smoothcert.training.config import TrainConfig, preset
    from smoothcert.training.loop import train as train_model

    config = preset(args.preset, **chosen_values(args, TrainConfig)).validate()
    with process_group(config.device) as env:
        path = train_model(config, resume=args.resume, progress=not args.quiet, env=env)
    print(f"checkpoint: {path}")
    return 0


def train_denoiser(args: argparse.Namespace) -> int:
    from smoothcert.denoising.config import DenoiserConfig
    from smoothcert.denoising.loop import train_denoiser as train_the_denoiser
    from smoothcert.runtime.distributed import process_group

    config = DenoiserConfig(**chosen_values(args, DenoiserConfig)).validate()
    with process_group(config.device) as env:
        path = train_the_denoiser(config, resume=args.resume, progress=not args.quiet, env=env)
    print(f"checkpoint: {path}")
    return 0


def _fast_options(args: argparse.Namespace, device):
    from smoothcert.smoothing.fast import FastOptions

    if args.fast:
        return FastOptions.all_for(device)
    return FastOptions(fold_bn=args.fold_bn, channels_last=args.channels_last, compile=args.compile, bf16=args.bf16, tf32=args.tf32)


def _smoothed(args: argparse.Namespace, device, fast=None):
    """The smoothed classifier of ``--checkpoint``, the split to evaluate, and what the results
    file records about them."""
    from smoothcert.smoothing.checkpoint import open_checkpoint
    from smoothcert.smoothing.fast import apply_fast_options, describe

    opened = open_checkpoint(args.checkpoint, device, args.split, args.data_dir, sigma=args.sigma, dataset=args.dataset,
                             diffusion=args.diffusion)
    if fast is not None:
        opened.smoothed.base_classifier = apply_fast_options(opened.smoothed.base_classifier, fast)
        opened.record["fast"] = describe(fast)
    return opened.smoothed, opened.data, opened.record


def _settings(args: argparse.Namespace) -> CertifySettings:
    """The certification settings the command's options give (validated where the job takes them)."""
    from smoothcert.smoothing.certification import CertifySettings

    return CertifySettings(**chosen_values(args, CertifySettings))


def certify(args: argparse.Namespace) -> int:
    from smoothcert.jobs.evaluate import certify_dataset
    from smoothcert.runtime.distributed import process_group

    settings = _settings(args).validate()  # before a process group starts
    with process_group(args.device) as env:
        smoothed, dataset, metadata = _smoothed(args, env.device, _fast_options(args, env.device))
        paths = certify_dataset(smoothed, dataset, args.outfile, settings, progress=not args.quiet and env.main, rank=env.rank,
                                world=env.world, metadata=metadata, resume=args.resume, shard=args.shard)
    if env.main:
        for path in paths.values():
            print(f"wrote {path}")
    return 0


def predict(args: argparse.Namespace) -> int:
    from smoothcert.jobs.evaluate import predict_dataset
    from smoothcert.runtime.distributed import refuse_under_torchrun, resolve_device

    refuse_under_torchrun("predict")
    smoothed, dataset, metadata = _smoothed(args, resolve_device(args.device))
    path = predict_dataset(smoothed, dataset, args.outfile, _settings(args), progress=not args.quiet, metadata=metadata,
                           resume=args.resume, shard=args.shard)
    print(f"wrote {path}")
    return 0


def votes(args: argparse.Namespace) -> int:
    from smoothcert.jobs.votes import vote_dataset
    from smoothcert.runtime.distributed import refuse_under_torchrun, resolve_device

    refuse_under_torchrun("votes")
    smoothed, dataset, metadata = _smoothed(args, resolve_device(args.device))
    path = vote_dataset(smoothed, dataset, args.outfile, _settings(args), progress=not args.quiet, metadata=metadata,
                        resume=args.resume, shard=args.shard)
    print(f"wrote {path}")
    return 0


def merge(args: argparse.Namespace) -> int:
    from smoothcert.jobs.shards import merge_shards

    print(f"wrote {merge_shards(args.outfile, args.shards)}")
    return 0


def analyze(args: argparse.Namespace) -> int:
    from smoothcert.analysis.accuracy import TABLE_RADII
    from smoothcert.analysis.report import analyze_files
    from smoothcert.analysis.tables import markdown_table

    summaries, written = analyze_files(args.files, args.labels, args.out_dir, tuple(args.radii or TABLE_RADII),
                                       args.alpha, args.rho, args.paired, args.name)
    print("Approximate certified accuracy (estimates: every certificate counted as right); lower bounds on the true "
          f"certified accuracy, valid with probability 1 - rho = {1 - args.rho:g}, are in {args.name}.csv\n")
    print(markdown_table(summaries))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


def replay(args: argparse.Namespace) -> int:
    from smoothcert.analysis.replay import replay_log, replay_table

    replays = [replay_log(path, args.sigma, args.n, args.alpha, args.radii, args.seed) for path in args.files]
    print(f"Grid rule against fixed n = {args.n:,} CERTIFY, replayed on each log's own probabilities (sigma {args.sigma:g}, "
          f"alpha {args.alpha:g}); samples per certified input\n")
    print(replay_table(replays))
    for r in replays:
        print(f"{r.name}: certified accuracy at " + ", ".join(f"r={radius:g}: {fixed:.4f} fixed n, {grid:.4f} grid"
                                                              for radius, fixed, grid in zip(r.radii, r.fixed_accuracy, r.grid_accuracy)))
    return 0


def reproduce(args: argparse.Namespace) -> int:
    from smoothcert.studies.reproduce import run_study, study_plan

    if args.dataset == "cifar10" and not args.data_dir:
        raise ValueError("--dataset cifar10 reads CIFAR-10 from a folder: pass --data-dir (the folder holding cifar-10-batches-py)")
    default = "runs/reproduce" + ("-cifar10" if args.dataset == "cifar10" else "") + ("-quick" if args.quick else "")
    written = run_study(study_plan(args.dataset, args.quick), args.out_dir or default, progress=not args.quiet, data_dir=args.data_dir)
    for table in ("table1", "figure1"):
        print(f"\n{table}:\n{written[f'{table}.md'].read_text()}")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def compare(args: argparse.Namespace) -> int:
    from smoothcert.studies.compare import comparison_plan, run_comparison

    if args.dataset == "cifar10" and not args.data_dir:
        raise ValueError("--dataset cifar10 reads CIFAR-10 from a folder: pass --data-dir (the folder holding cifar-10-batches-py)")
    plan = comparison_plan(args.dataset, args.quick)
    out = args.out_dir or f"runs/compare-{args.dataset}" + ("-quick" if args.quick else "")
    path = run_comparison(plan, out, progress=not args.quiet, data_dir=args.data_dir)
    print(f"\n{path.read_text()}\nwrote {path}")
    return 0


def paper(args: argparse.Namespace) -> int:
    from smoothcert.analysis.report import analyze_files
    from smoothcert.analysis.tables import markdown_table
    from smoothcert.jobs.pipeline import train_and_certify
    from smoothcert.runtime.distributed import process_group
    from smoothcert.studies.paper import PAPER_LABELS, cell_certify_settings, cell_config

    tag = "basic" if args.lam is None else f"l{args.lam:g}"
    extra = {key: value for key, value in (("device", args.device), ("workers", args.workers)) if value is not None}
    config = cell_config(args.dataset, args.sigma, args.lam, args.data_dir,
                         args.out_dir or f"runs/paper/{args.dataset}-s{args.sigma:g}-{tag}", **extra)
    with process_group(config.device) as env:
        paths = train_and_certify(config, cell_certify_settings(args.dataset), progress=not args.quiet, env=env)
    if not env.main:
        return 0
    summaries, _ = analyze_files(list(paths.values()), [PAPER_LABELS[name] for name in paths])
    print("Approximate certified accuracy (estimates; each row's certificates hold at the level it names)\n")
    print(markdown_table(summaries))
    return 0


RUN = {"demo": demo, "train": train, "train-denoiser": train_denoiser, "certify": certify, "predict": predict, "votes": votes, "merge": merge, "analyze": analyze,
       "replay": replay, "reproduce": reproduce, "compare": compare, "paper": paper}
"""The function of each command."""
