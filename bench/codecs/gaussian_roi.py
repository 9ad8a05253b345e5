"""``gaussian-roi``: the ``ggm`` network with compressai's Gaussian conditional instead.

Identical architecture, training and bitstream; the hyper-decoder predicts mean and scale of
a Gaussian (compressai ``GaussianConditional``), the baseline against which the GGM is judged.
"""

from __future__ import annotations

from bench.codecs.learned import LearnedRoiCodec


class GaussianRoiCodec(LearnedRoiCodec):
    """Learned ROI codec with the Gaussian mean-scale latent model."""

    name = "gaussian-roi"
    entropy = "gaussian"
