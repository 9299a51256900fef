"""The smoothed prediction of every example of a split: the base classifier's votes over ``n``
noisy copies, one TSV row per example (``idx``, ``label``, the votes of each class joined by
commas), resumable and with its settings beside it as certification writes them. CAT-RS trains
against ``pi(x) = votes / n`` of a Gaussian model at sigma = 0.25 (N = 10,000 in its authors' code).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from smoothcert.storage.tsv import VOTES_COLUMNS, ResultsFile
from smoothcert.jobs.evaluate import naming_examples, selected_indices
from smoothcert.jobs.resume import writing
from smoothcert.jobs.shards import shard_of, shard_record
from smoothcert.runtime.seeding import CERTIFY_STREAMS, input_generator
from smoothcert.smoothing.classifier import SmoothedClassifier
from smoothcert.rules import NON_NEGATIVE_INT, POSITIVE_INT


def vote_dataset(smoothed: SmoothedClassifier, dataset: Dataset, outfile: str | Path, n: int, batch_size: int = 1000, seed: int = 0,
                 progress: bool = True, metadata: dict | None = None, resume: bool = False, shard: str | None = None) -> Path:
    """Write the votes of every example of ``dataset`` over ``n`` noisy copies to ``outfile``
    (the noise of example ``idx`` from (seed, idx), as certification draws it); with ``resume``,
    examples already there are skipped; with ``shard`` ``"K/N"``, only the ``K``-th of every ``N``
    examples is voted on (:mod:`smoothcert.jobs.shards`)."""
    POSITIVE_INT.check("n", n)
    POSITIVE_INT.check("batch_size", batch_size)
    NON_NEGATIVE_INT.check("seed", seed)
    everything = selected_indices(len(dataset), 1, None)
    record = shard_record(dict(n=n, batch_size=batch_size, seed=seed, sigma=smoothed.sigma, noise_streams=CERTIFY_STREAMS,
                                **(metadata or {})), everything, shard)
    device, indices = smoothed.device or torch.device("cpu"), shard_of(everything, shard)
    with writing([Path(outfile)], record, resume, indices), ResultsFile(outfile, VOTES_COLUMNS) as results:
        for idx in tqdm([i for i in indices if i not in results.done], desc="votes",
                        disable=None if progress else True):
            x, label = dataset[idx]
            with naming_examples([idx]):
                counts = smoothed.sample_counts(x, n, batch_size, generator=input_generator(device, seed, idx))
            results.append(dict(idx=idx, label=int(label), votes=",".join(str(int(c)) for c in counts)))
    return Path(outfile)
