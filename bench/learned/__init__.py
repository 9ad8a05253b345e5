"""Learned ROI codecs: a quality-map conditioned mean-scale hyperprior with two entropy models.

``ggm`` codes the latents with the generalized Gaussian model of :mod:`bench.entropy`
(hyper-decoder predicts mean, scale and shape), ``gaussian-roi`` with compressai's
``GaussianConditional`` (mean and scale; :class:`bench.entropy.NearestScaleGaussianConditional`
maps scales to tables by the GGM's rule); the networks are otherwise identical.

Modules (imported lazily, torch is heavy):

* :mod:`~bench.learned.qmap`: quality maps (from an ROI and the quality grid; the four
  random generators used in training) and the rate-distortion weight ``lambda(q)``;
* :mod:`~bench.learned.layers`: spatial feature transform (SFT) layers and condition nets;
* :mod:`~bench.learned.network`: the model (:class:`~bench.learned.network.RoiHyperprior`),
  with gain-vector rate control from release 2 on;
* :mod:`~bench.learned.bitstream`: the container format, every byte counted;
* :mod:`~bench.learned.checkpoint`: plain state-dict checkpoints (``weights_only=True``);
* :mod:`~bench.learned.data`: training crops and the compact training pack;
* :mod:`~bench.learned.recipe`: named training recipes (what a run learns, stored with it);
* :mod:`~bench.learned.train`: the resumable trainer;
* :mod:`~bench.learned.coding`: coding one image with a model (the codec classes ``ggm`` and
  ``gaussian-roi`` are in :mod:`bench.codecs.learned`);
* :mod:`~bench.learned.latents`: fitting densities to actual latents (``bench analyze-latents``).
"""

from pathlib import Path

#: Latent entropy models of the learned codecs (``bench train --entropy``).
ENTROPY_KINDS = ("ggm", "gaussian")

#: Where the released weights and their cards live (``<codec>.pt``/``.json``).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: The registered codec name of each entropy kind.
CODEC_NAMES = {"ggm": "ggm", "gaussian": "gaussian-roi"}
