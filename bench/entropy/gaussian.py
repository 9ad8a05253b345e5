"""compressai's Gaussian conditional with the GGM's nearest-scale table rule.

compressai's ``GaussianConditional.build_indexes`` maps each scale to the *upper* neighbour in
its scale table. The ``gaussian-roi`` baseline must differ from ``ggm`` only in the density, so
it uses the same rule as the GGM's coding tables in that codec: the nearest table scale in log
space (:class:`bench.entropy.tables.TableGrid`, ``scale_rounding="nearest"``). Training,
likelihoods, tables and the rANS coder are compressai's, unchanged.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor

__all__ = ["NearestScaleGaussianConditional"]


class NearestScaleGaussianConditional(GaussianConditional):
    """``GaussianConditional`` whose table index is the nearest scale in log space."""

    def build_indexes(self, scales: Tensor) -> Tensor:
        """Table index (int32) of the table scale nearest to each bounded scale (log space)."""
        scales = self.lower_bound_scale(scales)
        log_table = torch.log(self.scale_table.to(scales.device, torch.float64))
        mids = 0.5 * (log_table[1:] + log_table[:-1])
        index = torch.bucketize(torch.log(scales.detach().double()), mids)
        return index.int()
