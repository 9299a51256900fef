"""Certification and prediction over a dataset split, writing one TSV row per example.

The noise for example ``idx`` comes from a generator seeded by (seed, idx), so a resumed,
sharded or subset run gives each example the numbers one uninterrupted run gives it. With
``method="both"`` CERTIFY and T-CERTIFY score the same noise samples, as the paper's Figure 2 does;
``method="all"`` adds the paper's exact T-CERTIFY beside them.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch.utils.data import Dataset
from tqdm import tqdm

from smoothcert.storage.atomic import write_text_atomic
from smoothcert.jobs.resume import leftover_shards, shard_path, writing
from smoothcert.jobs.shards import shard_of, shard_record
from smoothcert.runtime.allocator import heap_kept, keep_heap_memory
from smoothcert.runtime.seeding import CERTIFY_STREAMS, input_generator
from smoothcert.smoothing.certification import ALGORITHMS, CertifySettings, certify_batch
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.smoothing.counting import NonFiniteLogits, pass_size, refuse_oversized_pass
from smoothcert.statistics.certificates import ABSTAIN, Certificate, predict_from_counts
from smoothcert.storage.tsv import CERTIFY_COLUMNS, PREDICT_COLUMNS, ResultsFile, complete_lines, completed_indices


def selected_indices(size: int, skip: int, max_count: int | None) -> list[int]:
    """Every ``skip``-th index from 0, at most ``max_count`` of them (a count, unlike the
    reference code's ``--max``, which compares with the dataset index)."""
    indices = list(range(0, size, skip))
    return indices if max_count is None else indices[:max_count]


def output_paths(outfile: str | Path, method: str) -> dict[str, Path]:
    """One TSV per algorithm: ``outfile`` itself for one algorithm; for several (``both``,
    ``all``), ``<stem>.<algorithm>.tsv`` beside it (``.certify.tsv``, ``.tcertify.tsv``, ...)."""
    outfile = Path(outfile)
    if len(ALGORITHMS[method]) == 1:
        return {method: outfile}
    stem = outfile.name[:-4] if outfile.name.endswith(".tsv") else outfile.name
    return {name: outfile.with_name(f"{stem}.{name}.tsv") for name in ALGORITHMS[method]}


@contextmanager
def naming_examples(indices: Sequence[int]) -> Iterator[None]:
    """Inside the block, non-finite logits on input ``i`` of a batch are refused naming the
    dataset index ``indices[i]``."""
    try:
        yield
    except NonFiniteLogits as error:
        raise ValueError(f"the base classifier returned non-finite logits (NaN or inf) on noisy copies of example idx "
                         f"{indices[error.positions[0]]} of the dataset; nothing is certified from them: check the checkpoint's "
                         f"weights and the noise level sigma") from None


def _row(idx: int, label: int, cert: Certificate, samples: int, seconds: float) -> dict:
    return dict(idx=idx, label=label, predict=cert.label, radius=cert.radius, correct=cert.label == label and cert.label != ABSTAIN,
                time=seconds, pa_lower=cert.pa_lower, pb_upper=cert.pb_upper, alpha_prime=cert.alpha_prime, level=cert.level,
                samples=samples)


def _merge_shards(path: Path, shards: Sequence[Path], columns: Sequence[str]) -> None:
    """The complete rows of ``path`` and of ``shards``, sorted by ``idx``, written atomically to
    ``path``; the shards are then removed."""
    rows: dict[int, str] = {}
    for source in [path, *shards]:
        if source.is_file() and source.stat().st_size:
            for line in complete_lines(source, columns)[1:]:
                if line:
                    rows[int(line.split("\t", 1)[0])] = line
    write_text_atomic(path, "\t".join(columns) + "\n" + "".join(rows[i] + "\n" for i in sorted(rows)))
    for shard in shards:
        shard.unlink(missing_ok=True)


def certify_dataset(
    smoothed: SmoothedClassifier, dataset: Dataset, outfile: str | Path, settings: CertifySettings, progress: bool = True,
    rank: int = 0, world: int = 1, metadata: dict | None = None, resume: bool = False, shard: str | None = None,
) -> dict[str, Path]:
    """Certify the selected examples of ``dataset`` and append a row per example to the TSV(s)
    of :func:`output_paths`; returns the paths. Each row is flushed as it is written.

    With ``resume``, an output that already holds rows is continued: examples already there are
    skipped, a partial last row (a run killed mid-write) is dropped, and the settings must agree
    with those recorded beside it (:func:`smoothcert.jobs.resume.writing`). Without it, an
    output that holds rows is refused; so is an output another run is writing.

    Inputs whose ``n0 + n`` samples are fewer than ``batch_size`` are certified several at a time,
    their noise packed into shared forward passes (:meth:`SmoothedClassifier.count_phases`; the
    counts are the same as one at a time, and each row's ``time`` is its group's time divided
    by the group's size). With ``world > 1`` (under ``torchrun``), process ``rank`` certifies
    the selected examples ``rank, rank + world, ...`` into a shard file beside each output, and
    process 0 merges the shards, sorted by ``idx``, once every process is done. With ``shard``
    ``"K/N"`` (an independent job, no process group), only the ``K``-th of every ``N`` selected
    examples is certified (:mod:`smoothcert.jobs.shards`; ``smoothcert merge`` joins the files).

    Beside each TSV, ``<TSV>.json`` records the settings, sigma, the version of the per-input noise
    streams (:data:`~smoothcert.runtime.seeding.CERTIFY_STREAMS`), ``metadata`` (the checkpoint's
    digest, dataset, split, device type, the fast options the classifier ran with, ...) and the
    software versions.
    """
    settings.validate()
    paths = output_paths(outfile, settings.method)
    device = smoothed.device or torch.device("cpu")
    if device.type == "cpu":
        keep_heap_memory()  # before the first pass, so that the record says whether it holds
    record = {**asdict(settings), "grid": list(settings.grid), "sigma": smoothed.sigma, "world": world, "keep_heap": heap_kept(),
              "noise_streams": CERTIFY_STREAMS, **(metadata or {})}
    refuse_oversized_pass(pass_size(settings.batch_size, _group_size(settings), (settings.n0, settings.n)), dataset[0][0].to(device))
    selected = selected_indices(len(dataset), settings.skip, settings.max_count)
    record, selected = shard_record(record, selected, shard), shard_of(selected, shard)
    with ExitStack() as writer:
        _prepare_on_first(writer, paths.values(), record, resume, rank, world, selected)
        indices = _pending(paths, selected, rank, world)
        targets = {name: (shard_path(path, rank, world) if world > 1 else path) for name, path in paths.items()}
        with ExitStack() as stack:
            files = {name: stack.enter_context(ResultsFile(path, CERTIFY_COLUMNS)) for name, path in targets.items()}
            _certify_rows(smoothed, dataset, [i for i in indices if any(i not in f.done for f in files.values())], files, settings,
                          device, progress)
        if world > 1:
            dist.barrier()
            if rank == 0:
                for path in paths.values():
                    _merge_shards(path, [shard_path(path, r, world) for r in range(world)], CERTIFY_COLUMNS)
            dist.barrier()
    return paths


def _pending(paths: dict[str, Path], selected: list[int], rank: int, world: int) -> list[int]:
    """The selected examples this process still has to certify: those missing from some output
    (after process 0 merged the shards a killed run left), every ``world``-th from ``rank``."""
    if rank == 0:  # rows a killed run of several processes left in shards join the file
        for path in paths.values():
            shards = leftover_shards(path)
            if shards:
                _merge_shards(path, shards, CERTIFY_COLUMNS)
    done = set.intersection(*(completed_indices(path, CERTIFY_COLUMNS) for path in paths.values())) if rank == 0 else None
    if world > 1:
        done = _broadcast(done)
    return [i for i in selected if i not in done][rank::world]


def _group_size(settings: CertifySettings) -> int:
    """How many inputs share their forward passes (one with early stopping)."""
    return 1 if settings.target_radius is not None or settings.radii else max(1, settings.batch_size // (settings.n0 + settings.n))


def _certify_rows(smoothed: SmoothedClassifier, dataset: Dataset, todo: list[int], files: dict[str, ResultsFile],
                  settings: CertifySettings, device: torch.device, progress: bool) -> None:
    """Certify the examples ``todo``, a group at a time (:func:`certify_batch`), appending each
    algorithm's row to its file; the progress bar shows the first algorithm's accuracy."""
    group = _group_size(settings)
    shown, correct, finished = next(iter(files)), 0, 0
    bar = tqdm(total=len(todo), desc="certify", disable=None if progress else True)  # None: quiet off a terminal
    for first in range(0, len(todo), group):
        members = todo[first:first + group]
        started = time.perf_counter()
        examples = [dataset[idx] for idx in members]
        inputs = torch.stack([x for x, _ in examples]).to(device)
        generators = [input_generator(device, settings.seed, idx) for idx in members]
        with naming_examples(members):
            outcomes = certify_batch(smoothed, inputs, generators, settings)
        seconds = (time.perf_counter() - started) / len(members)
        for idx, (_, label), outcome in zip(members, examples, outcomes):
            for name, results in files.items():
                if idx not in results.done:
                    row = _row(idx, int(label), *outcome[name], seconds)
                    results.append(row)
                    correct += row["correct"] if name == shown else 0
            finished += 1
        bar.update(len(members))
        bar.set_postfix(correct=f"{correct / finished:.3f}", refresh=False)
    bar.close()


def _prepare_on_first(writer: ExitStack, paths, record: dict, resume: bool, rank: int, world: int, selected: list[int]) -> None:
    """Process 0 becomes the writer of ``paths`` until ``writer`` closes
    (:func:`smoothcert.jobs.resume.writing`); its refusal is raised on every process."""
    problem = None
    if rank == 0:
        try:
            writer.enter_context(writing(paths, record, resume, selected))
        except ValueError as error:
            problem = str(error)
    if world > 1:
        problem = _broadcast(problem)
    if problem is not None:
        raise ValueError(problem)


def _broadcast(value: object) -> object:
    """``value`` of process 0, on every process."""
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def predict_dataset(
    smoothed: SmoothedClassifier, dataset: Dataset, outfile: str | Path, settings: CertifySettings, progress: bool = True,
    metadata: dict | None = None, resume: bool = False, shard: str | None = None,
) -> Path:
    """Cohen et al.'s PREDICT on the selected examples, one TSV row each, with the settings
    recorded and checked on ``resume``, and ``shard`` taken, as in :func:`certify_dataset`; of
    ``settings`` (validated here) it uses ``n``, ``alpha``, ``batch_size``, ``skip``,
    ``max_count`` and ``seed``."""
    settings.validate()
    record = dict(n=settings.n, alpha=settings.alpha, batch_size=settings.batch_size, skip=settings.skip, max_count=settings.max_count,
                  seed=settings.seed, sigma=smoothed.sigma, noise_streams=CERTIFY_STREAMS, **(metadata or {}))
    indices = selected_indices(len(dataset), settings.skip, settings.max_count)
    record, indices = shard_record(record, indices, shard), shard_of(indices, shard)
    with writing([Path(outfile)], record, resume, indices), ResultsFile(outfile, PREDICT_COLUMNS) as results:
        for idx in tqdm([i for i in indices if i not in results.done], desc="predict", disable=None if progress else True):
            x, label = dataset[idx]
            started = time.perf_counter()
            counts = example_counts(smoothed, x, idx, settings)
            prediction = predict_from_counts.trusted(counts, settings.alpha)
            results.append(dict(idx=idx, label=int(label), predict=prediction.label, correct=prediction.label == int(label),
                                time=time.perf_counter() - started, pvalue=prediction.pvalue))
    return Path(outfile)


def example_counts(smoothed: SmoothedClassifier, x: torch.Tensor, idx: int, settings: CertifySettings) -> NDArray[np.int64]:
    """The counts of dataset example ``idx`` over ``settings.n`` noisy copies, drawn from its own
    stream (:func:`~smoothcert.runtime.seeding.input_generator`), as certification draws them."""
    device = smoothed.device or torch.device("cpu")
    with naming_examples([idx]):
        generator = input_generator(device, settings.seed, idx)
        return smoothed.count_phases(x.unsqueeze(0).to(device), (settings.n,), settings.batch_size, [generator])[0, 0]
