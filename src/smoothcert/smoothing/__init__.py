"""Floor 3, the model side: the smoothed classifier draws noise and counts the base classifier's
predictions (:mod:`~smoothcert.smoothing.classifier`), hands the counts to
:mod:`smoothcert.statistics`; loading it from a checkpoint (:mod:`~smoothcert.smoothing.checkpoint`)
and faster forward passes (:mod:`~smoothcert.smoothing.fast`)."""
