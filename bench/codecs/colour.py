"""The one audited RGB <-> YCbCr 4:2:0 conversion every YUV-based codec wrapper uses.

Codecs such as VVC, HEVC and AV1 code YCbCr 4:2:0, while the benchmark measures PSNR on 8-bit
RGB. Every step between the two is defined here once, so that no wrapper silently uses a
different matrix, range, rounding or chroma filter:

* **matrix**: ``bt601`` (Kr=0.299, Kb=0.114; the default, as ffmpeg's ``-pix_fmt yuv420p``
  conversion and hence the MPEG VCM image anchors use) or ``bt709`` (Kr=0.2126, Kb=0.0722);
* **range**: ``tv`` (limited: Y in 16..235, C in 16..240, scaled by 2**(bits-8); the default)
  or ``pc`` (full: 0..2**bits-1, chroma offset 2**(bits-1), as ITU-T H.273 defines);
* **bit depth**: 8 (``yuv420p``) or 10 (``yuv420p10le``);
* **rounding**: every float -> integer step rounds half up (``floor(x + 0.5)``) and then clips
  to the code range; nothing truncates;
* **chroma**: Cb/Cr are computed at full resolution in floating point, subsampled once by the
  mean of each 2x2 block (so chroma samples sit at the centre of their four luma samples), and
  quantised once. On the way back they are upsampled once by the matching centre-sited
  bilinear filter (weights 3/4, 1/4; edge samples replicated);
* **odd sizes**: the 2x2 mean needs an even image, so the RGB image is padded to even size by
  edge replication first and the luma plane is cropped back afterwards. The resulting planes
  have exactly the layout ffmpeg uses for odd-sized ``yuv420p`` (chroma ceil(H/2) x ceil(W/2)).
  Codec wrappers whose bitstream cannot carry odd sizes call :func:`pad_even` themselves and
  :func:`crop` after decoding.

Planar ``.yuv`` files written by :func:`write_yuv` are what ``ffmpeg -f rawvideo -pix_fmt
yuv420p[10le] -s WxH`` and the VTM reference software read (Y plane, then Cb, then Cr; 10-bit
samples as little-endian 16-bit words).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Luma weights (Kr, Kb) of each supported matrix; Kg = 1 - Kr - Kb.
MATRICES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
}

#: Names accepted for each range; the first of each pair is the canonical one (ffmpeg's).
RANGE_ALIASES: dict[str, str] = {"tv": "tv", "limited": "tv", "pc": "pc", "full": "pc"}

#: Bit depths the planar file functions support, with their ffmpeg pixel-format names.
PIX_FMTS: dict[int, str] = {8: "yuv420p", 10: "yuv420p10le"}


@dataclass(frozen=True)
class ColourSpec:
    """Matrix, range and bit depth of one RGB <-> YCbCr 4:2:0 conversion.

    The defaults (BT.601, limited range) are those of ffmpeg's own RGB -> ``yuv420p``
    conversion, so results stay comparable with MPEG VCM anchors made with ffmpeg.
    """

    matrix: str = "bt601"
    range: str = "tv"
    bit_depth: int = 10

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise ValueError(f"unknown matrix {self.matrix!r}; choose from {sorted(MATRICES)}")
        if self.range not in RANGE_ALIASES:
            raise ValueError(f"unknown range {self.range!r}; choose from {sorted(RANGE_ALIASES)}")
        if self.bit_depth not in PIX_FMTS:
            raise ValueError(f"unsupported bit depth {self.bit_depth}; choose 8 or 10")
        object.__setattr__(self, "range", RANGE_ALIASES[self.range])

    @property
    def pix_fmt(self) -> str:
        """The ffmpeg pixel format of planar files in this spec (``yuv420p[10le]``)."""
        return PIX_FMTS[self.bit_depth]

    @property
    def max_code(self) -> int:
        """Largest integer sample value, 2**bit_depth - 1."""
        return (1 << self.bit_depth) - 1

    def describe(self) -> str:
        """Short text for version strings, e.g. ``yuv420p10le bt601 tv``."""
        return f"{self.pix_fmt} {self.matrix} {self.range}"


@dataclass(frozen=True)
class Yuv420:
    """Integer Y, Cb, Cr planes of one 4:2:0 picture (chroma ceil(H/2) x ceil(W/2))."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int

    @property
    def height(self) -> int:
        """Luma height in samples."""
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        """Luma width in samples."""
        return int(self.y.shape[1])


# --------------------------------------------------------------------------- geometry


def chroma_shape(height: int, width: int) -> tuple[int, int]:
    """Shape of a 4:2:0 chroma plane for a ``height`` x ``width`` luma plane."""
    return (height + 1) // 2, (width + 1) // 2


def pad_to(array: np.ndarray, height: int, width: int, fill: str = "edge") -> np.ndarray:
    """Pad the first two axes of ``array`` to ``height`` x ``width`` at the bottom and right,
    by edge replication (``fill="edge"``) or with zeros (``"black"``, as ffmpeg's ``pad``)."""
    if fill not in ("edge", "black"):
        raise ValueError(f"unknown padding {fill!r}; choose 'edge' or 'black'")
    pad_h, pad_w = height - array.shape[0], width - array.shape[1]
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"cannot pad shape {array.shape[:2]} to smaller {(height, width)}")
    if pad_h == 0 and pad_w == 0:
        return array
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="edge" if fill == "edge" else "constant")


def pad_even(array: np.ndarray) -> np.ndarray:
    """Pad the first two axes of ``array`` up to even sizes by edge replication."""
    height, width = array.shape[:2]
    return pad_to(array, height + height % 2, width + width % 2)


def crop(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The top-left ``height`` x ``width`` part of ``array`` (undoes :func:`pad_to`)."""
    if array.shape[0] < height or array.shape[1] < width:
        raise ValueError(f"cannot crop shape {array.shape[:2]} to larger {(height, width)}")
    return array[:height, :width]


# --------------------------------------------------------------------------- float colour math


def rgb_to_ycbcr(image: np.ndarray, matrix: str = "bt601") -> tuple[np.ndarray, ...]:
    """Unquantised Y' in [0, 1] and Cb, Cr in [-0.5, 0.5] of a uint8 RGB image (float64)."""
    kr, kb = MATRICES[matrix]
    rgb = image.astype(np.float64) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    return y, cb, cr


def ycbcr_to_rgb(
    y: np.ndarray, cb: np.ndarray, cr: np.ndarray, matrix: str = "bt601"
) -> np.ndarray:
    """Round and clip float Y'CbCr (as from :func:`rgb_to_ycbcr`) back to uint8 RGB."""
    kr, kb = MATRICES[matrix]
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / (1.0 - kr - kb)
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def _round_clip(values: np.ndarray, spec: ColourSpec) -> np.ndarray:
    """Round half up, clip to the code range and store as the plane dtype."""
    dtype = np.uint8 if spec.bit_depth == 8 else np.uint16
    return np.clip(np.floor(values + 0.5), 0, spec.max_code).astype(dtype)


def quantise_luma(y: np.ndarray, spec: ColourSpec) -> np.ndarray:
    """Integer luma codes of float Y' in [0, 1]."""
    if spec.range == "tv":
        scale = 1 << (spec.bit_depth - 8)
        return _round_clip((16.0 + 219.0 * y) * scale, spec)
    return _round_clip(y * spec.max_code, spec)


def quantise_chroma(c: np.ndarray, spec: ColourSpec) -> np.ndarray:
    """Integer chroma codes of float Cb or Cr in [-0.5, 0.5]."""
    if spec.range == "tv":
        scale = 1 << (spec.bit_depth - 8)
        return _round_clip((128.0 + 224.0 * c) * scale, spec)
    return _round_clip(c * spec.max_code + (1 << (spec.bit_depth - 1)), spec)


def dequantise_luma(y: np.ndarray, spec: ColourSpec) -> np.ndarray:
    """Float Y' of integer luma codes (inverse of :func:`quantise_luma` before rounding)."""
    values = y.astype(np.float64)
    if spec.range == "tv":
        scale = 1 << (spec.bit_depth - 8)
        return (values / scale - 16.0) / 219.0
    return values / spec.max_code


def dequantise_chroma(c: np.ndarray, spec: ColourSpec) -> np.ndarray:
    """Float Cb or Cr of integer chroma codes (inverse of :func:`quantise_chroma`)."""
    values = c.astype(np.float64)
    if spec.range == "tv":
        scale = 1 << (spec.bit_depth - 8)
        return (values / scale - 128.0) / 224.0
    return (values - (1 << (spec.bit_depth - 1))) / spec.max_code


# --------------------------------------------------------------------------- chroma resampling


def subsample(plane: np.ndarray) -> np.ndarray:
    """Mean of each 2x2 block of an even-sized float plane (the one chroma downsampling)."""
    height, width = plane.shape
    if height % 2 or width % 2:
        raise ValueError(f"subsample needs an even-sized plane, got {plane.shape}")
    return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))


def _upsample_axis(plane: np.ndarray, axis: int) -> np.ndarray:
    """Double one axis with centre-sited bilinear weights (3/4 near, 1/4 far), edges replicated."""
    count = plane.shape[axis]
    before = np.take(plane, np.r_[0, np.arange(count - 1)], axis=axis)
    after = np.take(plane, np.r_[np.arange(1, count), count - 1], axis=axis)
    even = 0.75 * plane + 0.25 * before
    odd = 0.75 * plane + 0.25 * after
    stacked = np.stack([even, odd], axis=axis + 1)
    shape = list(plane.shape)
    shape[axis] = 2 * count
    return stacked.reshape(shape)


def upsample(plane: np.ndarray) -> np.ndarray:
    """Double both axes of a float chroma plane (the one chroma upsampling)."""
    return _upsample_axis(_upsample_axis(plane, 0), 1)


# --------------------------------------------------------------------------- public conversions


def rgb_to_yuv444(image: np.ndarray, spec: ColourSpec) -> tuple[np.ndarray, ...]:
    """Integer full-resolution Y, Cb, Cr planes of an RGB image (no chroma subsampling).

    Used to audit the matrix, range and rounding on their own.
    """
    y, cb, cr = rgb_to_ycbcr(image, spec.matrix)
    return quantise_luma(y, spec), quantise_chroma(cb, spec), quantise_chroma(cr, spec)


def yuv444_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, spec: ColourSpec) -> np.ndarray:
    """uint8 RGB image of integer full-resolution Y, Cb, Cr planes."""
    return ycbcr_to_rgb(
        dequantise_luma(y, spec),
        dequantise_chroma(u, spec),
        dequantise_chroma(v, spec),
        spec.matrix,
    )


def rgb_to_yuv420(image: np.ndarray, spec: ColourSpec) -> Yuv420:
    """Integer 4:2:0 planes of an H x W x 3 uint8 RGB image of any size (see module doc)."""
    height, width = image.shape[:2]
    y, cb, cr = rgb_to_ycbcr(pad_even(image), spec.matrix)
    return Yuv420(
        y=crop(quantise_luma(y, spec), height, width),
        u=quantise_chroma(subsample(cb), spec),
        v=quantise_chroma(subsample(cr), spec),
        bit_depth=spec.bit_depth,
    )


def yuv420_to_rgb(yuv: Yuv420, spec: ColourSpec) -> np.ndarray:
    """H x W x 3 uint8 RGB image of 4:2:0 planes made by :func:`rgb_to_yuv420` or a decoder."""
    if yuv.bit_depth != spec.bit_depth:
        raise ValueError(f"planes are {yuv.bit_depth}-bit but the spec is {spec.bit_depth}-bit")
    height, width = yuv.height, yuv.width
    even_h, even_w = 2 * yuv.u.shape[0], 2 * yuv.u.shape[1]
    y = dequantise_luma(pad_to(yuv.y, even_h, even_w), spec)
    cb = upsample(dequantise_chroma(yuv.u, spec))
    cr = upsample(dequantise_chroma(yuv.v, spec))
    return crop(ycbcr_to_rgb(y, cb, cr, spec.matrix), height, width)


# --------------------------------------------------------------------------- planar files


def frame_bytes(height: int, width: int, bit_depth: int) -> int:
    """Size in bytes of one planar 4:2:0 frame (what ffmpeg rawvideo reads and writes)."""
    ch, cw = chroma_shape(height, width)
    return (height * width + 2 * ch * cw) * (1 if bit_depth == 8 else 2)


def yuv_to_bytes(yuv: Yuv420) -> bytes:
    """Planar Y, Cb, Cr bytes; 10-bit samples as little-endian 16-bit words."""
    dtype = np.dtype(np.uint8) if yuv.bit_depth == 8 else np.dtype("<u2")
    return b"".join(np.ascontiguousarray(p, dtype=dtype).tobytes() for p in (yuv.y, yuv.u, yuv.v))


def yuv_from_bytes(data: bytes, height: int, width: int, bit_depth: int) -> Yuv420:
    """Planes of one frame from planar bytes; extra trailing frames are an error."""
    expected = frame_bytes(height, width, bit_depth)
    if len(data) != expected:
        raise ValueError(
            f"expected {expected} bytes for one {width}x{height} {PIX_FMTS[bit_depth]} frame, "
            f"got {len(data)}"
        )
    dtype = np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")
    samples = np.frombuffer(data, dtype=dtype)
    ch, cw = chroma_shape(height, width)
    y_end, c_size = height * width, ch * cw
    planes = (
        samples[:y_end].reshape(height, width),
        samples[y_end : y_end + c_size].reshape(ch, cw),
        samples[y_end + c_size :].reshape(ch, cw),
    )
    native = np.uint8 if bit_depth == 8 else np.uint16
    y, u, v = (p.astype(native) for p in planes)
    if bit_depth != 8 and max(int(p.max()) for p in (y, u, v)) >= 1 << bit_depth:
        raise ValueError(f"sample values exceed {bit_depth} bits; wrong pixel format?")
    return Yuv420(y=y, u=u, v=v, bit_depth=bit_depth)


def write_yuv(path: str | Path, yuv: Yuv420) -> Path:
    """Write one planar ``yuv420p``/``yuv420p10le`` frame to ``path`` and return the path."""
    path = Path(path)
    path.write_bytes(yuv_to_bytes(yuv))
    return path


def read_yuv(path: str | Path, height: int, width: int, bit_depth: int) -> Yuv420:
    """Read one planar frame written by :func:`write_yuv`, ffmpeg rawvideo or VTM."""
    return yuv_from_bytes(Path(path).read_bytes(), height, width, bit_depth)


def yuv_from_y4m(data: bytes) -> Yuv420:
    """Planes of the first frame of a YUV4MPEG2 stream (``ffmpeg -f yuv4mpegpipe``).

    Only 4:2:0 at 8 or 10 bits is accepted; any other colour space raises ValueError, so a
    decoder that emits an unexpected format is caught instead of being converted silently.
    """
    header_end = data.find(b"\n")
    if not data.startswith(b"YUV4MPEG2 ") or header_end < 0:
        raise ValueError("not a YUV4MPEG2 stream")
    fields = {tok[:1]: tok[1:] for tok in data[:header_end].split()[1:]}
    width, height = int(fields[b"W"]), int(fields[b"H"])
    space = fields.get(b"C", b"420jpeg").decode("ascii")
    if space in ("420jpeg", "420mpeg2", "420paldv", "420"):
        bit_depth = 8
    elif space == "420p10":
        bit_depth = 10
    else:
        raise ValueError(f"unsupported YUV4MPEG2 colour space C{space}; expected 4:2:0")
    frame_start = data.find(b"\n", header_end + 1) + 1
    if not data[header_end + 1 :].startswith(b"FRAME") or frame_start <= 0:
        raise ValueError("YUV4MPEG2 stream has no FRAME")
    size = frame_bytes(height, width, bit_depth)
    return yuv_from_bytes(data[frame_start : frame_start + size], height, width, bit_depth)


# --------------------------------------------------------------------------- measurement


def psnr(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two same-shaped images (inf when identical)."""
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {test.shape}")
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
