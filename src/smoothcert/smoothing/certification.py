"""Certify a batch of inputs: the one place where counts become certificates.

:func:`certify_batch` takes inputs with their noise generators and the settings of
:class:`CertifySettings` (Cohen et al.'s n0, n, alpha; which algorithms run on the same noise;
T-CERTIFY's options; early stopping) and returns, per input, each algorithm's certificate and the
estimation samples it used. :class:`~smoothcert.smoothing.classifier.SmoothedClassifier`'s
``certify``, ``t_certify`` and ``certify_until`` and the dataset loop
(:func:`smoothcert.jobs.evaluate.certify_dataset`) all call it; the bounds themselves are
computed by :mod:`smoothcert.statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from smoothcert.smoothing.counting import NOISE_BLOCK
from smoothcert.statistics.certificates import (ABSTENTIONS, PAPER_GRID, PB_BOUNDS, SELECTIONS, Certificate, certify_from_counts,
                                                GRID, t_certify_from_counts)
from smoothcert.statistics.grid import GridRule, GridRun, grid_radii, parse_radii
from smoothcert.statistics.sequential import (EARLY_STOPS, SequenceTest, checkpoint_decision, checkpoint_plan,
                                              sequence_decision)
from smoothcert.rules import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, PROBABILITY, Rule, optional
from smoothcert.settings import field_problems, setting

ALGORITHMS = {"certify": ("certify",), "tcertify": ("tcertify",), "both": ("certify", "tcertify"),
              "all": ("certify", "tcertify", "tcertify_paper")}
"""The algorithms each ``method`` runs on the same noise: ``tcertify`` with the settings' selection
and pB bound, ``tcertify_paper`` the paper's exact Algorithm 2 (``selection="paper"``,
``pb_bound="sum"``: eq. 14 over the grid at alpha, proven valid at the 1.9 alpha its rows record)."""
METHODS = tuple(ALGORITHMS)
SAMPLE_COUNT = Rule(lambda v: POSITIVE_INT.holds(v) and v <= 2**53, "must be a positive integer of at most 2**53")
"""A sample count: above 2**53 counts are no longer exact in the statistics' floating point."""


def _names_a_grid(spelling: object) -> bool:
    try:
        return isinstance(spelling, str) and bool(parse_radii(spelling))
    except ValueError:
        return False


GRID_SPELLING = Rule(_names_a_grid, "must be 'auto' or a comma-separated increasing list of non-negative radii such as 0.25,0.5,0.75")


@dataclass
class CertifySettings:
    """How to certify: Cohen et al.'s n0, n, alpha; T-CERTIFY's options; early stopping; which
    examples of a dataset. Each field carries its help text and rule (:mod:`smoothcert.rules`);
    ``smoothcert certify`` takes one option per field."""

    n0: int = setting(100, "selection samples (Cohen et al.'s N0)", SAMPLE_COUNT, flags=("--n0", "--N0"))
    n: int = setting(100_000, "estimation samples (Cohen et al.'s N; under torchrun write --N, since torchrun takes --n for its own)",
                     SAMPLE_COUNT, flags=("--n", "--N"))
    alpha: float = setting(0.001, "the certificates hold with probability 1 - alpha", PROBABILITY)
    batch_size: int = setting(1000, "noisy copies per forward pass", POSITIVE_INT, flags=("--batch",), place=True)
    method: str = setting("certify", "both: the two algorithms on the same noise, written to OUTFILE's .certify.tsv and "
                          ".tcertify.tsv; all: also the paper's exact T-CERTIFY (--selection paper --pb-bound sum) in "
                          ".tcertify_paper.tsv", choices=METHODS)
    grid: Sequence[float] = setting(PAPER_GRID, "T-CERTIFY's alpha'/alpha grid", GRID)
    selection: str = setting("corrected", "how T-CERTIFY's best split stays valid (docs/guide/guarantees.md)", choices=SELECTIONS)
    abstain: str = setting("half", "when T-CERTIFY abstains", choices=ABSTENTIONS)
    pb_bound: str = setting("max", "T-CERTIFY's bound on pB: max (Clopper-Pearson on the largest other count, never looser) or "
                            "sum (eq. 14; with --selection paper, the paper's algorithm exactly)", choices=PB_BOUNDS)
    skip: int = setting(1, "certify every SKIP-th example (the reference code uses 20 on CIFAR-10, 100 on ImageNet)", POSITIVE_INT)
    max_count: int | None = setting(None, "at most this many examples (a count, not an index; under torchrun write --max-count)",
                                    optional(POSITIVE_INT), flags=("--max", "--max-count"))
    seed: int = setting(0, "seed of the certification noise", NON_NEGATIVE_INT)
    target_radius: float | None = setting(None, "CERTIFY with early stopping: stop sampling an input once it certifies this "
                                          "radius or cannot", optional(POSITIVE))
    radii: str | None = setting(None, "grid certification: stop sampling each input once its largest certified radius on this "
                                "grid is decided; a comma-separated list (0.25,0.5,0.75) or auto (0.25, 0.5, ... up to what n "
                                "can certify). Inputs still open at n may sample on to 1.25 n. The radius written is the grid radius "
                                "certified (Clopper-Pearson's for an input that reached the last look)",
                                optional(GRID_SPELLING))
    early_stop: str = setting("sequence", "how early stopping stays valid: a confidence sequence checked after every 100 samples, "
                              "or Clopper-Pearson bounds at --stages fixed checkpoints", choices=EARLY_STOPS)
    stages: int = setting(5, "checkpoints of --early-stop checkpoints (n/16, n/8, ..., n)", POSITIVE_INT)

    def validate(self) -> "CertifySettings":
        """Refuse settings no run could use, naming each problem and what is expected."""
        problems = field_problems(self)
        if self.target_radius is not None and self.method != "certify":
            problems.append(f"early stopping (target_radius) needs method 'certify', got {self.method!r}")
        if self.radii is not None and self.method != "certify":
            problems.append(f"grid certification (radii) needs method 'certify', got {self.method!r}")
        if self.radii is not None and self.target_radius is not None:
            problems.append("give either target_radius (one radius) or radii (a grid), not both")
        if problems:
            raise ValueError("invalid certification settings: " + "; ".join(problems))
        return self


class Counter(Protocol):
    """What certification needs of a smoothed classifier: its noise level and its counts."""

    sigma: float

    def count_phases(self, inputs: torch.Tensor, phases: Sequence[int], batch_size: int,
                     generators: Sequence[torch.Generator | None]) -> NDArray[np.int64]: ...


Certified = dict[str, tuple[Certificate, int]]
"""One input's outcome: per algorithm, its certificate and the estimation samples it used."""


def score(name: str, counts0: NDArray[np.int64], counts: NDArray[np.int64], settings: CertifySettings, sigma: float) -> Certificate:
    """The certificate of algorithm ``name`` (of :data:`ALGORITHMS`) on one input's counts."""
    if name == "certify":
        return certify_from_counts.trusted(counts0, counts, settings.alpha, sigma)
    paper = name == "tcertify_paper"
    return t_certify_from_counts.trusted(counts0, counts, settings.alpha, sigma, grid=settings.grid, abstain=settings.abstain,
                                 selection="paper" if paper else settings.selection, pb_bound="sum" if paper else settings.pb_bound)


def certify_batch(smoothed: Counter, inputs: torch.Tensor, generators: Sequence[torch.Generator | None],
                  settings: CertifySettings) -> list[Certified]:
    """Each input's certificates under ``settings`` (validated by the caller, where they entered).
    Without early stopping, every algorithm of ``settings.method`` scores the same ``n0`` selection and ``n`` estimation
    samples, and the noise of all inputs is packed into shared forward passes; with
    ``target_radius``, each input runs :func:`certify_until_decided`; with ``radii``,
    :func:`certify_on_grid`."""
    one_by_one = certify_until_decided if settings.target_radius is not None else certify_on_grid if settings.radii else None
    if one_by_one is not None:
        return [{"certify": one_by_one(smoothed, inputs[i:i + 1], generators[i], settings)} for i in range(len(inputs))]
    counts = smoothed.count_phases(inputs, (settings.n0, settings.n), settings.batch_size, generators)
    return [{name: (score(name, counts0, counts_n, settings, smoothed.sigma), settings.n) for name in ALGORITHMS[settings.method]}
            for counts0, counts_n in counts]


def certify_until_decided(smoothed: Counter, inputs: torch.Tensor, generator: torch.Generator | None,
                          settings: CertifySettings) -> tuple[Certificate, int]:
    """CERTIFY of one input (``inputs`` holds it alone) that stops sampling once the outcome at
    ``settings.target_radius`` is decided, by the rule ``settings.early_stop`` of
    :mod:`smoothcert.statistics.sequential` (``"sequence"``: a look after every block of
    :data:`NOISE_BLOCK` samples; ``"checkpoints"``: ``stages`` fixed looks). Returns the
    certificate, valid at level ``alpha`` whenever it stopped, and the estimation samples used (at
    most ``n``); they are a prefix of those CERTIFY draws with the same generator. Blocks are
    evaluated a few at a time (1, 2, 4, ... blocks per forward pass, up to ``batch_size``) and
    decided after each block."""
    n, alpha, sigma, radius = settings.n, settings.alpha, smoothed.sigma, settings.target_radius
    top = _select(smoothed, inputs, generator, settings)
    if settings.early_stop == "checkpoints":
        plan = checkpoint_plan(n, alpha, settings.stages, block=NOISE_BLOCK)
        decide = lambda look, count, used: checkpoint_decision(plan, look, top, count, sigma, radius, alpha)
        return _sample_until(smoothed, inputs, generator, settings, top, plan.checkpoints, decide, most_per_call=1)
    test = SequenceTest(n, alpha)
    decide = lambda look, count, used: sequence_decision(test, top, count, used, sigma, radius)
    return _sample_until(smoothed, inputs, generator, settings, top, _every_block(n), decide)


def certify_on_grid(smoothed: Counter, inputs: torch.Tensor, generator: torch.Generator | None,
                    settings: CertifySettings) -> tuple[Certificate, int]:
    """CERTIFY of one input (``inputs`` holds it alone) on the grid ``settings.radii``: after the
    ``n0`` selection samples, estimation samples are drawn in blocks of :data:`NOISE_BLOCK` until
    the input's largest certified grid radius is decided, by the rule of
    :mod:`smoothcert.statistics.grid` (valid at level ``alpha`` whatever the stopping time).
    Returns the certificate and the estimation samples used (inputs still open at ``n`` may go on
    to the rule's last look at 1.25 n; up to ``n`` they are a prefix of those CERTIFY draws with
    the same generator, and the same stream continues past it)."""
    n, sigma = settings.n, smoothed.sigma
    run = GridRun(GridRule(n, settings.alpha, sigma, grid_radii(settings.radii, n, settings.alpha, sigma)), 1, NOISE_BLOCK)
    top = _select(smoothed, inputs, generator, settings)

    def decide(look: int, count: int, used: int) -> Certificate | None:
        run.record(np.array([count - run.count[0]], dtype=np.int64))
        return None if run.active[0] else run.certificate(0, top)

    return _sample_until(smoothed, inputs, generator, settings, top, _every_block(run.rule.last_look), decide)


def _select(smoothed: Counter, inputs: torch.Tensor, generator: torch.Generator | None, settings: CertifySettings) -> int:
    """The top class of the ``n0`` selection samples of one input."""
    return int(np.argmax(smoothed.count_phases(inputs, (settings.n0,), settings.batch_size, [generator])[0, 0]))


def _every_block(n: int) -> list[int]:
    """A look after every block of :data:`NOISE_BLOCK` samples, and at ``n``."""
    return [*range(NOISE_BLOCK, n, NOISE_BLOCK), n]


def _sample_until(smoothed: Counter, inputs: torch.Tensor, generator: torch.Generator | None, settings: CertifySettings, top: int,
                  looks: Sequence[int], decide: Callable[[int, int, int], Certificate | None],
                  most_per_call: int | None = None) -> tuple[Certificate, int]:
    """Draw estimation samples of one input up to each look of ``looks`` and ask
    ``decide(look, top_count, used)`` after each; return its first certificate and the samples
    used. Looks are evaluated a few at a time (1, 2, 4, ... per forward pass, up to
    ``batch_size`` samples, or ``most_per_call`` looks)."""
    most_per_call = most_per_call or max(1, settings.batch_size // NOISE_BLOCK)
    top_count, used, look, per_call = 0, 0, 0, 1
    while True:
        chunk = list(looks[look:look + per_call])
        phases = np.diff((used, *chunk))
        counts = smoothed.count_phases(inputs, tuple(int(p) for p in phases), settings.batch_size, [generator])[0, :, top]
        for count, checkpoint in zip(counts, chunk):
            top_count, used = top_count + int(count), checkpoint
            decided = decide(look, top_count, used)
            if decided is not None:
                return decided, used
            look += 1
        per_call = min(2 * per_call, most_per_call)
