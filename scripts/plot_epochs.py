"""Per-epoch divergence diagnostics of training runs side by side, from their ``log.csv``.

    python scripts/plot_epochs.py OUT_STEM RUN_DIR[=LABEL] [RUN_DIR[=LABEL] ...]

Writes ``OUT_STEM.png`` and ``OUT_STEM.pdf``: five panels against the epoch (share of training
examples with every noisy copy right, accuracy under noise on the training split, mean largest
logit on a log scale, ``l_adre``, accuracy under noise on the test split), one line per run (a
run without the ADRE term logs ``l_adre`` as 0 and is left out of that panel).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from smoothcert.storage.atomic import write_bytes_atomic  # noqa: E402

PANELS = (("all_correct", "examples with every copy right", False), ("train_noisy_acc", "training accuracy under noise", False),
          ("max_logit", "largest logit (mean)", True),
          ("l_adre", "l_adre (mean)", True), ("test_noisy_acc", "test accuracy under noise", False))


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    stem, runs = Path(argv[0]), [arg.partition("=") for arg in argv[1:]]
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.4))
    for number, (folder, _, label) in enumerate(runs):
        with (Path(folder) / "log.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        epochs = [int(r["epoch"]) for r in rows]
        for axis, (key, title, log_scale) in zip(axes, PANELS):
            values = [float(r[key]) for r in rows]
            if key == "l_adre" and not any(values):
                continue
            axis.plot(epochs, values, label=label or folder, color=f"C{number}")
            axis.set_title(title, fontsize=10)
            axis.set_xlabel("epoch")
            if log_scale:
                axis.set_yscale("symlog", linthresh=1.0)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    for suffix in (".png", ".pdf"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix[1:], dpi=120)
        write_bytes_atomic(stem.with_suffix(suffix), buffer.getvalue())
    plt.close(figure)


if __name__ == "__main__":
    main(sys.argv[1:])
