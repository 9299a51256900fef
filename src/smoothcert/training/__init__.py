"""Floor 4: training a base classifier: settings and recipes (:mod:`~smoothcert.training.config`),
the paper's objectives (:mod:`~smoothcert.training.objectives`, eq. 5-8), one module per training
method with its objective and attack (:mod:`~smoothcert.training.methods`), and the loop
(:mod:`~smoothcert.training.loop`)."""
