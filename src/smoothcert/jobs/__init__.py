"""Floor 5: runs over a dataset: certification and prediction of a split into TSVs
(:mod:`~smoothcert.jobs.evaluate`), resumed and sharded (:mod:`~smoothcert.jobs.resume`), and
training followed by certification (:mod:`~smoothcert.jobs.pipeline`)."""
