"""Floor 5: runs over a dataset: certification and prediction of a split into TSVs
(:mod:`~smoothcert.runs.evaluate`), resumed and sharded (:mod:`~smoothcert.runs.resume`), and
training followed by certification (:mod:`~smoothcert.runs.pipeline`)."""
