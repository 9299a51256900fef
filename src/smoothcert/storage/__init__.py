"""Floor 1, torch-free: atomic writes (:mod:`~smoothcert.storage.atomic`) and the results TSVs
(:mod:`~smoothcert.storage.tsv`), which the runs write and the analysis reads."""
