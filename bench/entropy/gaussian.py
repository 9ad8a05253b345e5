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

from bench.entropy.rans import compressai_tables, read_symbols, write_symbols

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

    def compress(self, inputs: Tensor, indexes: Tensor, means: Tensor | None = None,
                 encoder: object = None) -> list[bytes] | None:
        """compressai's ``compress``; with ``encoder`` (a ``BufferedRansEncoder``) the symbols
        are appended to it instead, for one string shared with other parts (returns None)."""
        if encoder is None:
            return super().compress(inputs, indexes, means)
        if inputs.size() != indexes.size():
            raise ValueError("`inputs` and `indexes` should have the same size.")
        symbols = self.quantize(inputs, "symbols", means)
        write_symbols(encoder, symbols, indexes, compressai_tables(self))
        return None

    def decompress(self, strings: list[bytes] | None, indexes: Tensor,
                   dtype: torch.dtype = torch.float, means: Tensor | None = None,
                   decoder: object = None) -> Tensor:
        """compressai's ``decompress``; with ``decoder`` (a ``RansDecoder`` whose stream is
        set) ``strings`` is ignored and the symbols are the stream's next ones."""
        if decoder is None:
            return super().decompress(strings, indexes, dtype, means)
        symbols = read_symbols(decoder, indexes, compressai_tables(self))
        return self.dequantize(symbols.to(indexes.device), means, dtype)
