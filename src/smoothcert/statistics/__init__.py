"""Floor 1, torch-free: bounds and certificates computed from class counts.

- :mod:`~smoothcert.statistics.bounds`: Clopper-Pearson bounds, eq. 14's bound on pB (``pb_upper``), the radii (eq. 2).
- :mod:`~smoothcert.statistics.certificates`: PREDICT, CERTIFY and T-CERTIFY (Algorithm 2) on counts.
- :mod:`~smoothcert.statistics.sequential`: early stopping that keeps CERTIFY valid.
"""
