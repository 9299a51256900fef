"""Every training objective under one name (beside :mod:`smoothcert.training`): the paper's
(:mod:`smoothcert.training.objectives`) and the field's (each in its method's module of
:mod:`smoothcert.training.methods`), each on the logits of the noisy copies, a ``(B, k, C)``
tensor, returning :class:`LossParts` whose ``.loss`` is the batch loss."""

from smoothcert.training.methods.catrs import catrs_high_confidence, catrs_loss, catrs_low_confidence
from smoothcert.training.methods.consistency import consistency_loss
from smoothcert.training.methods.macer import macer_loss
from smoothcert.training.methods.smoothmix import smoothmix_loss
from smoothcert.training.objectives import LossParts, adre_term, perturbed_risk, regularized_risk, smoothed_log_probs

__all__ = ["LossParts", "perturbed_risk", "smoothed_log_probs", "adre_term", "regularized_risk", "macer_loss", "consistency_loss",
           "smoothmix_loss", "catrs_loss", "catrs_low_confidence", "catrs_high_confidence"]
