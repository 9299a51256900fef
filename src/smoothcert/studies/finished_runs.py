"""A study's runs: each seed of each cell is trained and certified once, and leaves a
``done.json`` (its settings, results files and wall time) with which the run is complete without
its checkpoint; a study resumes from these small files alone, on another folder or machine."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from smoothcert.analysis.accuracy import summarize
from smoothcert.analysis.tables import Row, mean_row
from smoothcert.storage.atomic import write_text_atomic
from smoothcert.storage.tsv import read_results
from smoothcert.jobs.pipeline import train_and_certify
from smoothcert.smoothing.certification import CertifySettings
from smoothcert.training.config import TrainConfig
from smoothcert.training.diagnostics import TrainingDiverged
from smoothcert.training.epoch_log import read_log


@dataclass
class Cell:
    """One trained configuration, over seeds: the rows it contributes to are named by ``label``."""

    label: str
    folder: str
    config: Callable[[int, str], TrainConfig]
    capped_twin: str | None = None
    """For a faithful ADRE cell: the folder of the cell that differs from it only by its ADRE cap.
    A seed of that cell whose cap never bound took the faithful objective's steps, bit for bit
    (the capped and uncapped terms and their gradients agree wherever the cap is not active), so
    it stands for this cell's seed instead of a second, identical training run."""


@dataclass
class RunResult:
    """One seed of a cell: its certification rows by algorithm, or why it has none."""

    rows: dict[str, list[dict]] | None
    diverged: str | None
    seconds: float
    same_as: str | None = None
    """The run that stands for this one (see :attr:`Cell.capped_twin`), if any."""


DONE = "done.json"
"""The record a finished run leaves in its folder: its settings, its results files and its wall
time. With it (and the results files) a run is complete without its checkpoint, so a study
resumes from its small files alone."""
PLACE_FIELDS = {"train": ("out_dir", "data_dir", "workers", "device", "catrs_votes"), "certify": ("batch_size",)}
"""Settings that say where and how a run was computed, not what it computed: left out of the
record, so that a study moved to another folder or machine reuses its finished runs (CAT-RS's
votes file is the study's own, made from the plan's settings, wherever the study lies)."""


def _record(config: TrainConfig, settings: CertifySettings) -> dict[str, Any]:
    return {part: {k: v for k, v in asdict(value).items() if k not in PLACE_FIELDS[part]}
            for part, value in (("train", config), ("certify", settings))}


def _defaults(part: str) -> dict[str, Any]:
    """The default of every setting of a record's ``part``: the value of a setting added since a
    run was recorded."""
    return {k: v for k, v in asdict(TrainConfig() if part == "train" else CertifySettings()).items() if k not in PLACE_FIELDS[part]}


def _recorded(done: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The settings of a ``done.json`` as ``record`` lays them out (a setting it does not record:
    its default), in JSON's types."""
    kept = {part: {k: v for k, v in done.get(part, {}).items() if k not in PLACE_FIELDS[part]} for part in record}
    return json.loads(json.dumps({part: {**_defaults(part), **kept[part]} for part in record}))


def _finished(out: Path, record: dict[str, Any]) -> RunResult | None:
    """The results of a run finished earlier with the same settings, or None."""
    path = out / DONE
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    if json.loads(json.dumps(record)) != _recorded(done, record):
        raise ValueError(f"{out} holds a run finished with other settings than this study's; move it away to run it again")
    return RunResult({name: read_results(out / file) for name, file in done["results"].items()}, None, float(done["seconds"]),
                     done.get("same_as"))


def cap_never_bound(log: Path, epochs: int) -> bool:
    """Whether the run logged in ``log`` finished its ``epochs`` epochs with the ADRE cap active
    at no example of any step (an epoch logged without the count, by an earlier version: unknown)."""
    rows = read_log(log, epochs)
    return len(rows) == epochs and all(float(row["adre_capped"]) == 0.0 for row in rows)


def _stand_in(twin: Path, out: Path, record: dict[str, Any], epochs: int) -> RunResult | None:
    """The finished capped run in ``twin`` as the faithful run ``record`` describes, copied to
    ``out``, when the two differ only by the cap and the cap never bound; else None."""
    if record["train"]["adre_cap"] is not None or not (twin / DONE).is_file():
        return None
    started = time.perf_counter()
    done = json.loads((twin / DONE).read_text())
    settings = _recorded(done, record)
    if settings["train"].pop("adre_cap") is None or settings != json.loads(json.dumps(
            {"train": {k: v for k, v in record["train"].items() if k != "adre_cap"}, "certify": record["certify"]})):
        return None
    if not cap_never_bound(twin / "log.csv", epochs):
        return None
    out.mkdir(parents=True, exist_ok=True)
    for name in (*done["results"].values(), *(f"{file}.json" for file in done["results"].values()), "log.csv"):
        if (twin / name).is_file():
            shutil.copyfile(twin / name, out / name)
    seconds = time.perf_counter() - started
    same_as = f"{twin.parent.name}/{twin.name}"
    write_text_atomic(out / DONE, json.dumps({**record, "results": done["results"], "seconds": seconds, "same_as": same_as},
                                             indent=2) + "\n")
    return RunResult({name: read_results(out / file) for name, file in done["results"].items()}, None, seconds, same_as)


def finished_result(cell: Cell, seed: int, certify: CertifySettings, root: Path) -> RunResult | None:
    """Seed ``seed`` of ``cell`` read back from its small files (or its capped twin's), or None
    when it has not finished; a run finished with other settings is refused."""
    out = root / cell.folder / f"seed{seed}"
    marker = out / "diverged.txt"
    if marker.is_file():
        return RunResult(None, marker.read_text().strip(), 0.0)
    config = cell.config(seed, str(out))
    record = _record(config, replace(certify, seed=seed))
    finished = _finished(out, record)
    if finished is None and cell.capped_twin is not None:
        finished = _stand_in(root / cell.capped_twin / f"seed{seed}", out, record, config.epochs)
    return finished


def run_seed(cell: Cell, seed: int, certify: CertifySettings, root: Path, progress: bool) -> RunResult:
    """Train (or resume) one seed of a cell and certify the test subset with ``certify`` (its seed:
    the training seed), or read the run back from its small files when it finished earlier."""
    finished = finished_result(cell, seed, certify, root)
    if finished is not None:
        return finished
    out = root / cell.folder / f"seed{seed}"
    started = time.perf_counter()
    settings = replace(certify, seed=seed)
    config = cell.config(seed, str(out))
    try:
        paths = train_and_certify(config, settings, progress=progress)
    except TrainingDiverged as error:
        write_text_atomic(out / "diverged.txt", f"{error}\n")
        return RunResult(None, str(error), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    write_text_atomic(out / DONE, json.dumps({**_record(config, settings), "results": {name: path.name for name, path in paths.items()},
                                              "seconds": seconds}, indent=2) + "\n")
    return RunResult({name: read_results(path) for name, path in paths.items()}, None, seconds)


def aggregate(name: str, results: list[RunResult], radii: tuple[float, ...], which: str = "certify") -> Row:
    """Mean and standard deviation over the seeds that did not diverge."""
    good = [summarize(r.rows[which], name, radii) for r in results if r.rows is not None]
    diverged = len(results) - len(good)
    name += f" ({diverged}/{len(results)} seeds diverged)" if diverged else ""
    if not good:
        return Row(name, np.full(len(radii) + 2, np.nan))
    return mean_row(name, good)
