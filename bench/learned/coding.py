"""Coding one image with a learned ROI model: what the network sees, the bitstream, and back.

Encoding: the quality grid point gives the ROI and background quality codes
(:mod:`bench.learned.qmap`); the image and the code map are edge-padded to a multiple of
16, the decoder's latent-resolution map is the 16×16 block maximum, and the bitstream
(:mod:`bench.learned.bitstream`) carries the image size, that map, and the rANS string(s).
The decoder crops back to the original size; bpp counts every byte over the original pixels.

Determinism: encode and decode run with one CPU intra-op thread, so the hyper-decoder's
entropy parameters (and the reconstruction) are bit-identical in any process on the same
kind of CPU and torch build; the entropy coding itself works on integers. Another CPU kind
or torch build may round floats differently (as for any compressai model): the encoder's
latents then differ a little (another valid bitstream, e.g. for ``ggm`` q4 on an AMD Zen 3
against the Zen 4 that made ``results/ci_baseline.json``), and, worse, in bitstream formats
1 and 2 the decoder may pick another rANS table for a latent than the encoder did and lose
sync. Decoding in a process with other float kernels (MKL_CBWR=COMPATIBLE for float64
products, ONEDNN_MAX_CPU_ISA=SSE41 for float32 convolutions) gave garbage on 3 of 24 shared
cases in format 2 (8 pictures × q1, q4, q8), on none in format 3, whose entropy parameters
are computed in float64: rounding differences of ~1e-16 instead of ~1e-7 make a table
mismatch far less likely, not impossible (``tests/test_learned_codec.py`` keeps two of the
cases format 2 lost). Format 3 is written from release 3 on
(:mod:`bench.learned.bitstream`). A decoder that loses sync in format 2 or 3, like one given
a truncated or corrupt stream or one written with other weights, now says so
(:func:`bench.learned.stream.check_stream_end`: the rANS state must end where it started)
instead of returning garbage; format 1 (two strings decoded inside compressai) has no such
check.

The codec classes ``ggm`` and ``gaussian-roi`` (:mod:`bench.codecs.learned`) wrap these
functions; the benchmarks and tests call them with a model directly.
"""

from __future__ import annotations

import numpy as np

from bench.errors import CodecError
from bench.learned.qmap import (
    LATENT_STRIDE,
    Q_STEPS,
    block_max,
    code_map,
    pad_to_multiple,
)

#: Largest picture the learned codecs code or decode (2**25 pixels, e.g. 8192×4096): the
#: synthesis transform's full-width layers alone need about 100 bytes per pixel.
MAX_PIXELS = 1 << 25


def model_inputs(image: np.ndarray, roi, point, roi_mode: str = "gt"):
    """What the network sees for one image at grid ``point``: ``(x, q, q_lat, lat_codes)``.

    ``x`` is the edge-padded image (1×3×H×W in [0, 1]), ``q`` the full-resolution quality map,
    ``q_lat`` the decoder's latent-resolution map (16×16 block maxima) and ``lat_codes`` its
    integer codes, the map the bitstream carries.
    """
    import torch

    codes = pad_to_multiple(code_map(image.shape[:2], roi, point, roi_mode))
    lat_codes = block_max(codes, LATENT_STRIDE)
    padded = pad_to_multiple(image)
    x = torch.from_numpy(np.array(padded, copy=True)).permute(2, 0, 1)[None].float() / 255.0
    q = torch.from_numpy(codes.astype(np.float32) / Q_STEPS)[None, None]
    q_lat = torch.from_numpy(lat_codes.astype(np.float32) / Q_STEPS)[None, None]
    return x, q, q_lat, lat_codes


def encode_image(
    model, image: np.ndarray, roi, point, roi_mode: str = "gt", return_details: bool = False,
    stream_format: int | None = None,
):
    """Encode with a loaded model; with ``return_details`` also the encoder-side tensors,
    the reconstruction ``x_hat`` among them (without, the encoder skips the synthesis
    transform: the bitstream does not depend on it).

    ``stream_format``: bitstream format 1, 2 or 3 (default
    :data:`bench.learned.bitstream.FORMAT_WRITTEN`).
    """
    import torch

    from bench.learned import bitstream
    from bench.learned.bitstream import Payload, pack
    from bench.learned.layers import single_thread

    stream_format = stream_format or bitstream.FORMAT_WRITTEN
    if stream_format not in bitstream.FORMATS:
        raise ValueError(f"stream_format must be one of {bitstream.FORMATS}, got {stream_format}")
    h, w = image.shape[:2]
    x, q, q_lat, lat_codes = model_inputs(image, roi, point, roi_mode)
    lat_codes = lat_codes.astype(np.uint8)
    if stream_format == 1:
        with single_thread(), torch.inference_mode():
            out = model.compress(x, q, q_lat, reconstruct=return_details)
        payload = Payload(model.entropy, h, w, lat_codes, out["z"], out["y"])
    else:
        from compressai.ans import BufferedRansEncoder

        from bench.learned.mapcoding import write_binary_map

        encoder = BufferedRansEncoder()
        if bitstream.map_in_stream(lat_codes):
            write_binary_map(encoder, (lat_codes == lat_codes.max()).astype(np.uint8))
        with single_thread(), torch.inference_mode():
            out = model.compress(x, q, q_lat, encoder=encoder, params64=stream_format == 3,
                                 reconstruct=return_details)
        payload = Payload(model.entropy, h, w, lat_codes, stream=encoder.flush(),
                          params64=stream_format == 3)
    data = pack(payload)
    return (data, out) if return_details else data


def _fewest_bits_per_table(cdf, lengths, starts=None, precision: int = 16) -> list[float]:
    """The least one symbol can cost under each rANS table: ``-log2`` of its largest
    frequency (every symbol of a table has a frequency of at least 1).

    ``cdf`` is one row per table (compressai's layout) or, with ``starts``, all tables in one
    flat array (the GGM's layout).
    """
    import torch

    out = []
    for i, n in enumerate(lengths.tolist()):
        row = cdf[i, :n] if starts is None else cdf[int(starts[i]) : int(starts[i]) + n]
        best = int(torch.diff(row.long()).max()) if n > 1 else 1
        out.append(float(np.log2((1 << precision) / max(best, 1))))
    return out


def check_stream_capacity(model, p) -> None:
    """Refuse a header whose image size its payload cannot be, before allocating anything.

    The picture must be at most :data:`MAX_PIXELS`, and each rANS string must be long enough
    for the symbols the claimed size implies: ``M·h·w`` latents at the fewest bits any of
    their tables allows, and ``⌈h/4⌉·⌈w/4⌉`` hyper-latent positions at the sum over the
    ``N`` channels of each channel's own table's fewest bits (every channel of ``z`` always
    uses its table, about 36 bits a position for the released models), less 64 bits for what
    the coder's final state can hold. A 17-byte stream claiming 65536×65536 fails here within
    milliseconds, and a few-kilobyte stream cannot claim more than a few times its picture.
    """
    if p.height * p.width > MAX_PIXELS:
        raise CodecError(
            f"bitstream claims {p.width}×{p.height}, more than the {MAX_PIXELS} "
            f"pixels the learned codecs decode; the stream is corrupt or not ours"
        )
    floors = getattr(model, "_fewest_bits", None)
    if floors is None:
        eb, cond = model.entropy_bottleneck, model.conditional
        z_bits = sum(_fewest_bits_per_table(eb._quantized_cdf, eb._cdf_length))  # a position
        starts = getattr(cond, "_cdf_start", None)
        flat = starts is not None and starts.numel() == cond._cdf_length.numel()
        y_bits = min(_fewest_bits_per_table(
            cond._quantized_cdf, cond._cdf_length, starts if flat else None
        ))
        floors = model._fewest_bits = (y_bits, z_bits)
    h, w, n_y, _ = symbol_counts(model, p)
    needs = {"y": n_y * floors[0], "z": -(-h // 4) * -(-w // 4) * floors[1]}
    if p.format >= 2:  # one string holds both (and the map, whose blocks may cost ~0 bits)
        needs = {"rANS": needs["y"] + needs["z"]}
    for name, bits in needs.items():
        have = 8 * len(p.stream if p.format >= 2 else getattr(p, name))
        if have + 64 < bits:
            raise CodecError(
                f"bitstream claims {p.width}×{p.height}, which needs at least "
                f"{bits / 8:.0f} bytes of {name} string; it has {have // 8}: the "
                f"stream is truncated or corrupt"
            )


def symbol_counts(model, p) -> tuple[int, int, int, int]:
    """``(h, w, y symbols, z symbols)`` of a picture of ``p``'s size: the latent-resolution
    map is h×w blocks (also the map's symbols in format 2)."""
    from bench.learned.bitstream import latent_size

    h, w = latent_size(p.height, p.width, LATENT_STRIDE)
    return h, w, model.M * h * w, model.N * -(-h // 4) * -(-w // 4)


def padded(string: bytes, symbols: int) -> bytes:
    """``string`` followed by padding, so that a corrupt rANS string cannot make compressai's
    decoder read past its end (it does not check bounds and crashes the process).

    The padding is one marker word (:data:`bench.learned.stream.PAD_MARK`, which the end
    check of formats 2 and 3 reads) and zero bytes. A valid string's symbols are never read
    from the padding; a corrupt one, once in the zeros, decodes the lowest symbol with at
    most one 32-bit read per symbol, plus the bypass reads its garbage can ask for (at most
    15 per nibble of garbage, 8 nibbles per read).
    """
    from bench.learned.stream import PAD_MARK

    return string + PAD_MARK + bytes(4 * (symbols + 64) + 16 * len(string))


def decode_image(model, data: bytes, return_details: bool = False):
    import torch

    from bench.learned.bitstream import BitstreamError, unpack
    from bench.learned.layers import single_thread
    from bench.learned.stream import END_PROBES, StreamEndError

    try:
        p = unpack(data)
    except BitstreamError as exc:
        raise CodecError(str(exc)) from exc
    if p.entropy != model.entropy:
        raise CodecError(f"bitstream of a {p.entropy} model given to a {model.entropy} decoder")
    check_stream_capacity(model, p)
    h, w, n_y, n_z = symbol_counts(model, p)
    if p.format == 1:  # z padded as generously as y (N·h·w symbols)
        y_string, z_string = padded(p.y, n_y), padded(p.z, model.N * h * w)
        codes, decoder = p.codes, None
    else:
        from compressai.ans import RansDecoder

        from bench.learned.mapcoding import read_binary_map

        y_string = z_string = None
        decoder = RansDecoder()
        # map blocks, z, y and the end probes
        decoder.set_stream(padded(p.stream, h * w + n_y + n_z + END_PROBES))
        codes = p.codes
        if codes is None:
            try:
                bits = read_binary_map(decoder, h, w)
            except ValueError as exc:
                raise CodecError(f"corrupt bitstream: {exc}") from exc
            codes = np.asarray(p.levels, np.uint8)[bits]
    q_lat = torch.from_numpy(codes.astype(np.float32) / Q_STEPS)[None, None]
    with single_thread(), torch.inference_mode():
        try:
            out = model.decompress(y_string, z_string, q_lat, decoder=decoder,
                                   params64=p.format == 3)
        except StreamEndError as exc:
            raise CodecError(f"corrupt bitstream: {exc}") from exc
    x_hat = out["x_hat"][0, :, : p.height, : p.width].clamp(0, 1).mul(255).round()
    image = x_hat.permute(1, 2, 0).to(torch.uint8).numpy().copy()
    return (image, out) if return_details else image
