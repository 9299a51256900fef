"""Floor 1, torch-free: atomic writes (:mod:`~smoothcert.files.atomic`) and the results TSVs
(:mod:`~smoothcert.files.tsv`), which the runs write and the analysis reads."""
