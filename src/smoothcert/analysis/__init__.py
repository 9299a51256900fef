"""Floor 2, torch-free: certified accuracy, the ACR, lower bounds on the true certified accuracy,
tables and curves from results TSVs (:mod:`~smoothcert.analysis.report`)."""
