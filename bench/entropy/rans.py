"""Calls into compressai's rANS coder with ragged CDF tables.

compressai's ``RansEncoder.encode_with_indexes(symbols, indexes, cdfs, cdf_sizes,
offsets)`` takes a list of CDFs and one CDF index per symbol; symbols outside a table are
sent through its escape ("bypass") mechanism: the table's last symbol flags the escape and
the distance to the table is written in 4-bit chunks. Passing all (alpha x beta) tables on
every call would convert ~10**6 integers to C++ vectors each time, so :class:`RansTables`
hands the coder only the tables a tensor actually uses, with the indexes renumbered; the
bitstream does not depend on that numbering, only on the CDF contents.

The encoder writes into a buffer of 32 bits per symbol; :func:`check_escape_budget` refuses
inputs whose escapes could overflow it (compressai does not check this).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_ABS_SYMBOL",
    "RansTables",
    "check_escape_budget",
    "compressai_tables",
    "read_symbols",
    "write_symbols",
]

#: Largest |centred symbol| accepted; escapes compute ``2 * value`` in int32.
MAX_ABS_SYMBOL = 2**29

_BYPASS_BITS = 4  # compressai's bypass_precision
_BYPASS_MAX = 2**_BYPASS_BITS - 1  # max_bypass_val
_PRECISION_BITS = 16  # compressai's rANS probability precision


def check_escape_budget(symbols: Tensor, offset: Tensor, max_value: Tensor) -> None:
    """Raise ``ValueError`` if one stream's escapes may overflow the coder's output buffer.

    ``symbols``, ``offset`` (first symbol of the table) and ``max_value`` (escape slot) are
    per-symbol tensors of one stream. Each symbol costs at most 16 bits, an escape adds
    4 bits per raw-value chunk plus the chunk count; the buffer holds 32 bits per symbol.
    """
    value = symbols.long() - offset.long()
    max_value = max_value.long()
    escaped = (value < 0) | (value >= max_value)
    if not bool(escaped.any()):
        return
    value, max_value = value[escaped], max_value[escaped]
    raw = torch.where(value < 0, -2 * value - 1, 2 * (value - max_value))
    bit_length = torch.where(raw > 0, torch.floor(torch.log2(raw.double().clamp(min=1))) + 1, 0)
    chunks = torch.ceil(bit_length / _BYPASS_BITS)
    count_chunks = 1 + torch.div(chunks, _BYPASS_MAX, rounding_mode="floor")
    escape_bits = _BYPASS_BITS * (chunks + count_chunks)
    needed = _PRECISION_BITS * symbols.numel() + float(escape_bits.sum()) + 64
    if needed > 32 * symbols.numel():
        raise ValueError(
            "too many/too large out-of-table values for compressai's rANS output buffer "
            f"(up to {needed:.0f} bits needed, {32 * symbols.numel()} available)"
        )


def compressai_tables(module) -> tuple[list, list, list]:
    """(CDFs, CDF lengths, offsets) of a compressai ``EntropyModel`` (one table per row of
    ``_quantized_cdf``) as the rANS coder takes them, after its own size checks."""
    module._check_cdf_size()
    module._check_cdf_length()
    module._check_offsets_size()
    return (module._quantized_cdf.tolist(), module._cdf_length.reshape(-1).int().tolist(),
            module._offset.reshape(-1).int().tolist())


def write_symbols(encoder: object, symbols: Tensor, indexes: Tensor, tables: tuple) -> None:
    """Append ``symbols`` (coded with the tables ``indexes`` name) to a compressai
    ``BufferedRansEncoder``; ``tables`` is (CDFs, lengths, offsets)."""
    encoder.encode_with_indexes(symbols.reshape(-1).int().tolist(),
                                indexes.reshape(-1).int().tolist(), *tables)


def read_symbols(decoder: object, indexes: Tensor, tables: tuple) -> Tensor:
    """The next ``indexes.numel()`` symbols (int32, shaped like ``indexes``) from a
    compressai ``RansDecoder`` whose stream is set, as :func:`write_symbols` wrote them."""
    values = decoder.decode_stream(indexes.reshape(-1).int().tolist(), *tables)
    return torch.from_numpy(
        np.fromiter(values, dtype=np.int32, count=len(values))
    ).reshape(indexes.shape)


class RansTables:
    """Ragged CDF tables prepared for compressai's rANS coder.

    Args:
        cdf: all CDFs concatenated (int32).
        start, length, offset: per-table start in ``cdf``, CDF length (``pmf + 2``) and
            first symbol, as compressai's ``_cdf_length`` and ``_offset``.
    """

    def __init__(self, cdf: Tensor, start: Tensor, length: Tensor, offset: Tensor) -> None:
        self.cdf = cdf.cpu()
        self.start = start.cpu().long()
        self.length = length.cpu().long()
        self.offset = offset.cpu().long()
        self._rows: dict[int, list[int]] = {}

    def _row(self, table: int) -> list[int]:
        """The CDF of one table as a Python list (cached: the coder wants lists)."""
        row = self._rows.get(table)
        if row is None:
            begin = int(self.start[table])
            row = self.cdf[begin : begin + int(self.length[table])].tolist()
            self._rows[table] = row
        return row

    def subset(self, indexes: Tensor) -> tuple[Tensor, list[list[int]], list[int], list[int]]:
        """Renumber ``indexes`` to the used tables; return them with those tables' data.

        Linear time (a presence count over the table ids), no sort.
        """
        flat = indexes.reshape(-1).long().cpu()
        num_tables = self.length.numel()
        if flat.numel():
            low, high = torch.aminmax(flat)
            if int(low) < 0 or int(high) >= num_tables:
                raise ValueError(f"table index out of range [0, {num_tables})")
        present = torch.bincount(flat, minlength=num_tables) > 0
        renumber = torch.cumsum(present, 0) - 1
        used = torch.nonzero(present).reshape(-1)
        cdfs = [self._row(t) for t in used.tolist()]
        sizes = self.length[used].tolist()
        offsets = self.offset[used].tolist()
        return renumber[flat].reshape(indexes.shape), cdfs, sizes, offsets

    def encode(
        self, encoder: object, symbols: Tensor, indexes: Tensor, max_abs_symbol: int | None = None
    ) -> list[bytes]:
        """Encode each row of ``symbols`` (``N x M`` int) with its per-symbol table indexes.

        ``max_abs_symbol`` (if known) skips the escape budget check when even all-escaped
        symbols fit: ``|s| <= 128`` means at most 16 + 12 bits per symbol.
        """
        symbols = symbols.cpu()
        indexes = indexes.cpu().long()
        local, cdfs, sizes, offsets = self.subset(indexes)
        small = max_abs_symbol is not None and max_abs_symbol <= 128 and symbols.size(1) >= 16
        strings = []
        for row in range(symbols.size(0)):
            if not small:
                table = indexes[row]
                check_escape_budget(symbols[row], self.offset[table], self.length[table] - 2)
            strings.append(
                encoder.encode_with_indexes(
                    symbols[row].numpy().tolist(), local[row].numpy().tolist(), cdfs, sizes, offsets
                )
            )
        return strings

    def read(self, decoder: object, indexes: Tensor) -> Tensor:
        """The next ``indexes.numel()`` symbols (int32, shaped like ``indexes``) from a
        decoder whose stream is set (``RansDecoder.set_stream``), coded with these tables."""
        local, cdfs, sizes, offsets = self.subset(indexes.cpu())
        return read_symbols(decoder, local, (cdfs, sizes, offsets))

    def decode(self, decoder: object, strings: list[bytes], indexes: Tensor) -> Tensor:
        """Decode one stream per row of ``indexes`` (``N x M``) into int32 symbols."""
        local, cdfs, sizes, offsets = self.subset(indexes.cpu())
        out = torch.empty(local.shape, dtype=torch.int32)
        for row, string in enumerate(strings):
            values = decoder.decode_with_indexes(
                string, local[row].numpy().tolist(), cdfs, sizes, offsets
            )
            out[row] = torch.from_numpy(np.fromiter(values, dtype=np.int32, count=len(values)))
        return out
