"""Floor 4: training a base classifier: settings and recipes (:mod:`~smoothcert.training.config`),
the objectives (:mod:`~smoothcert.training.objectives`, eq. 5-8), the attacks
(:mod:`~smoothcert.training.attacks`, eq. 12-13) and the loop (:mod:`~smoothcert.training.loop`)."""
