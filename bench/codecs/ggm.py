"""``ggm``: learned ROI codec, SFT-conditioned mean-scale hyperprior with a GGM entropy model.

See :mod:`bench.learned.coding` for the coding pipeline and :mod:`bench.learned.network` for
the network; the hyper-decoder predicts mean, scale and shape of a generalized Gaussian
(:class:`bench.entropy.GeneralizedGaussianConditional`) per latent element.
"""

from __future__ import annotations

from bench.codecs.learned import LearnedRoiCodec


class GgmRoiCodec(LearnedRoiCodec):
    """Learned ROI codec with the generalized Gaussian (GGM) latent model."""

    name = "ggm"
    entropy = "ggm"
