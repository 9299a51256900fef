"""Floor 6: the studies built on the runs: the demo (:mod:`~smoothcert.studies.demo`), the
reproduction study (:mod:`~smoothcert.studies.reproduce`) and the paper's full-scale cells
(:mod:`~smoothcert.studies.paper`)."""
