"""The pictures of the HTML report: originals and reconstructions side by side.

For a few images of the run (:func:`select_images`: by default a handful spread evenly over
object coverage, the share of pixels inside the ROI) and for each target rate, every codec
label shows the grid point whose pooled bpp is nearest the target (in log-rate), so a reader
compares codecs at about the same rate and can find the point on the RD curves. A
reconstruction comes from the run's ``--keep-recon`` PNG when there is one of the row's own
bitstream (:func:`bench.runner.kept_recon`), else from the
stored bitstream decoded by the installed codec, after checking that its version is the
stored one (a codec whose version changed would show pictures the numbers do not belong to).

What is written, per image (under ``img/<image id>/`` of the report):

* every reconstruction and the original as WebP at :data:`VIEW_QUALITY` (a small web image:
  a 640×480 picture is some 30–60 kB);
* a square crop on one object (:func:`crop_box`) of each, *lossless* WebP, shown enlarged
  with nearest-neighbour scaling, so coding artefacts are seen exactly as decoded;
* the outline of the ROI (union of the instance masks) as a transparent PNG.

Detections (the task predictions stored by ``bench run --task detection``, else those of
segmentation) are kept as boxes with score ≥ :data:`SCORE_THRESHOLD` for the page to draw.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.labels import codec_name, split_label
from bench.report.points import RATES, Points, is_ceiling

#: Images shown when ``--html-images`` is not given.
DEFAULT_IMAGES = 6
#: Target rates (bpp) of the gallery when ``--html-bpp`` is not given.
DEFAULT_TARGETS = (0.3,)
#: Detections below this confidence are not drawn.
SCORE_THRESHOLD = 0.5
#: WebP quality of the full views (the crops are lossless).
VIEW_QUALITY = 85
#: Side of the square crop, in pixels of the image: its bounds.
CROP_MIN, CROP_MAX = 96, 192
#: Colour of the ROI outline (RGBA).
OUTLINE_RGBA = (0, 229, 255, 255)


class GalleryError(RuntimeError):
    """The gallery cannot be made (no data set, unknown images); the message says why."""


@dataclass
class Detection:
    """One detection box drawn on a picture: x, y, w, h in image pixels, class, score."""

    x: float
    y: float
    w: float
    h: float
    name: str
    score: float


@dataclass
class Tile:
    """One picture of the gallery: a codec label's reconstruction (or the original)."""

    label: str
    quality: str
    #: paths relative to the report folder; empty when there is no picture (see ``note``)
    view: str = ""
    crop: str = ""
    #: this image's bpp and the grid point's pooled bpp over the run
    bpp: float = math.nan
    bpp_run: float = math.nan
    psnr: float = math.nan
    roi_psnr: float = math.nan
    bg_psnr: float = math.nan
    detections: list[Detection] | None = None
    note: str = ""


@dataclass
class GalleryImage:
    """One image of the gallery with its crop, ROI outline and tiles per target rate."""

    image_id: int
    file_name: str
    width: int
    height: int
    coverage: float
    objects: int
    #: crop square: x, y, side
    crop: tuple[int, int, int]
    outline: str
    original: Tile
    #: {target bpp: [tiles in codec order]}
    tiles: dict[float, list[Tile]] = field(default_factory=dict)


@dataclass
class Gallery:
    """Everything the page needs to show the pictures."""

    images: list[GalleryImage]
    targets: list[float]
    #: {target: {label: quality}}: the grid point each codec shows at each target
    chosen: dict[float, dict[str, str]]
    #: the task and model file the detections come from, or "" when the run has none
    detections_from: str = ""
    notes: list[str] = field(default_factory=list)


def parse_images(text: str | None) -> int | list[int]:
    """``--html-images``: a count (``6``) or image ids (``139,285``; one id: ``139,``)."""
    if text is None:
        return DEFAULT_IMAGES
    text = text.strip()
    try:
        if "," in text:
            return [int(t) for t in text.split(",") if t.strip()]
        n = int(text)
    except ValueError:
        raise ValueError(f"--html-images {text!r}: give a count (6) or image ids "
                         "(139,285; a single id as 139,)") from None
    if n < 0:
        raise ValueError(f"--html-images {text!r}: a count cannot be negative")
    return n


def select_images(coverage: dict[int, float], count: int) -> list[int]:
    """``count`` image ids spread evenly over object coverage (lowest to highest).

    The images are ordered by coverage (ties by id) and taken at evenly spaced ranks, so
    the gallery shows both a nearly empty scene and a crowded one.
    """
    order = sorted(coverage, key=lambda i: (coverage[i], i))
    if count >= len(order):
        return order
    if count <= 0:
        return []
    if count == 1:
        return [order[len(order) // 2]]
    ranks = sorted({round(k * (len(order) - 1) / (count - 1)) for k in range(count)})
    return [order[r] for r in ranks]


def nearest_quality(points: Points, label: str, target: float,
                    rate: str = "pooled") -> tuple[str, float] | None:
    """The (quality, bpp) of a label's grid point nearest ``target`` bpp in log-rate."""
    col = RATES[rate]
    rows = points.frame[points.frame["codec"] == label].drop_duplicates("quality")
    best = None
    for q, bpp in rows[["quality", col]].itertuples(index=False):
        if bpp is None or not math.isfinite(bpp) or bpp <= 0:
            continue
        d = abs(math.log(bpp / target))
        if best is None or d < best[0]:
            best = (d, q, float(bpp))
    return None if best is None else (best[1], best[2])


def crop_box(annotations: Sequence[dict], width: int, height: int) -> tuple[int, int, int]:
    """The crop square (x, y, side) on one object, inside the image.

    The object is the non-crowd instance whose box is nearest 128 px on its long side
    (in log scale; larger area breaks ties), so the crop holds a whole object at about
    twice its size on the page; the square has 25 % margin, between :data:`CROP_MIN` and
    :data:`CROP_MAX` px (never more than the image). Without objects: the image centre.
    """
    limit = min(width, height)
    cands = [a for a in annotations if not a.get("iscrowd") and a.get("bbox")
             and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    if cands:
        a = min(cands, key=lambda a: (abs(math.log(max(a["bbox"][2], a["bbox"][3]) / 128)),
                                      -a["bbox"][2] * a["bbox"][3]))
        x, y, w, h = a["bbox"]
        side = round(1.25 * max(w, h))
        cx, cy = x + w / 2, y + h / 2
    else:
        side, cx, cy = CROP_MAX, width / 2, height / 2
    side = int(min(max(side, CROP_MIN), CROP_MAX, limit))
    x0 = int(min(max(round(cx - side / 2), 0), width - side))
    y0 = int(min(max(round(cy - side / 2), 0), height - side))
    return x0, y0, side


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a bool mask (inside, with an outside 4-neighbour), 2 px wide."""
    m = np.asarray(mask, bool)
    pad = np.pad(m, 1, constant_values=False)
    inner = (pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2]
             & pad[1:-1, 2:])
    edge = m & ~inner
    grow = np.pad(edge, 1, constant_values=False)  # thicken inwards by one pixel
    thick = edge | (m & (grow[:-2, 1:-1] | grow[2:, 1:-1] | grow[1:-1, :-2] | grow[1:-1, 2:]))
    return thick


def _outline_png(mask: np.ndarray) -> bytes:
    from PIL import Image

    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[outline(mask)] = OUTLINE_RGBA
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _webp(image: np.ndarray, *, lossless: bool) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if lossless:
        Image.fromarray(image).save(buf, format="WEBP", lossless=True, quality=100, method=4)
    else:
        Image.fromarray(image).save(buf, format="WEBP", quality=VIEW_QUALITY, method=4)
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


class _Decoders:
    """One codec object per label, built from the label's options and checked against the
    stored version before it decodes anything."""

    def __init__(self):
        self._codecs: dict[str, object] = {}

    def get(self, label: str, version: str):
        if label not in self._codecs:
            self._codecs[label] = self._make(label, version)
        codec = self._codecs[label]
        if isinstance(codec, str):
            raise GalleryError(codec)
        return codec

    @staticmethod
    def _make(label: str, version: str):
        from bench.registry import CODECS

        name, texts = split_label(label)
        try:
            cls = CODECS.get(name)
        except Exception as exc:
            return f"codec {name} is not installed ({exc})"
        codec = None
        for kwargs in (texts, {}):
            try:
                codec = cls(**kwargs)
                break
            except (TypeError, ValueError):
                continue
        if codec is None:
            return f"codec {label} cannot be created here"
        reason = codec.availability()
        if reason is not None:
            return f"codec {label} is unavailable here ({reason})"
        have = codec.version()
        if have != version:
            return (f"the installed {name} is version {have!r}, the store holds {version!r}; "
                    "its bitstreams are not decoded (rerun with --keep-recon to keep pictures)")
        return codec


def _detections(store, task_model: tuple[str, str] | None, label: str, version: str,
                quality: str, image_id: int, names: dict[int, str]) -> list[Detection] | None:
    if task_model is None:
        return None
    import json

    task, key = task_model
    ok, _bad = store.predictions(codec_name(label), version, quality, task, key, [image_id])
    if image_id not in ok:
        return None
    out = []
    for r in json.loads(ok[image_id]):
        if r.get("score", 0) >= SCORE_THRESHOLD and r.get("bbox"):
            x, y, w, h = (float(v) for v in r["bbox"])
            out.append(Detection(x, y, w, h, names.get(int(r["category_id"]),
                                                       str(r["category_id"])),
                                 float(r["score"])))
    return sorted(out, key=lambda d: -d.score)


def detection_source(points: Points) -> tuple[str, str, str] | None:
    """(task, model key, model file) whose predictions are drawn: detection, else
    segmentation, the first model of the task; None when the run has no predictions."""
    for task in ("detection", "segmentation"):
        models = points.models(task)
        if models:
            key, info = next(iter(models.items()))
            return task, key, info["model"]
    return None


def build_gallery(points: Points, store, run_dir: str | Path, dataset, out_dir: str | Path, *,
                  images: int | Sequence[int] = DEFAULT_IMAGES,
                  targets: Sequence[float] = DEFAULT_TARGETS,
                  rate: str = "pooled") -> Gallery:
    """Choose the images, write their pictures under ``out_dir/img`` and describe them.

    ``dataset`` is a :class:`bench.data.coco.CocoDataset` holding the run's images (their
    pixels, annotations and ROI); ``images`` is a count or a list of image ids (which must be
    among the run's images).
    """
    from bench.runner import kept_recon

    ids = list(points.image_ids)
    missing = [i for i in ids if i not in dataset.coco.imgs]
    if missing:
        raise GalleryError(f"{len(missing)} of the run's images (e.g. {missing[0]}) are not in "
                           f"{dataset.annotation_file}; pass the run's --data-root/--split")
    if isinstance(images, int):
        coverage = {i: float(dataset.roi_mask(i).mean()) for i in ids}
        chosen_ids = select_images(coverage, images)
    else:
        unknown = [i for i in images if i not in ids]
        if unknown:
            raise GalleryError(f"--html-images: image(s) {', '.join(map(str, unknown))} not "
                               f"among the run's {len(ids)} images")
        chosen_ids = list(dict.fromkeys(images))
    targets = sorted(dict.fromkeys(float(t) for t in targets))
    if any(t <= 0 for t in targets):
        raise GalleryError("--html-bpp: a target rate must be positive")
    labels = [c for c in points.codecs() if not is_ceiling(c)]
    chosen = {t: {} for t in targets}
    for t in targets:
        for label in labels:
            near = nearest_quality(points, label, t, rate)
            if near is not None:
                chosen[t][label] = near[0]
    src = detection_source(points)
    task_model = (src[0], src[1]) if src else None
    names = {int(c["id"]): str(c["name"]) for c in dataset.coco.dataset.get("categories", [])}
    ceilings = [c for c in points.codecs() if is_ceiling(c)]
    decoders = _Decoders()
    pooled = {(c, q): float(b) for c, q, b in points.frame[
        ["codec", "quality", RATES[rate]]].drop_duplicates(["codec", "quality"]).itertuples(
            index=False)}
    out = Path(out_dir)
    gallery = Gallery([], targets, chosen,
                      f"{src[0]} model {src[2]}" if src else "")
    for image_id in chosen_ids:
        sample = dataset.load(image_id)
        h, w = sample.image.shape[:2]
        folder = out / "img" / str(image_id)
        folder.mkdir(parents=True, exist_ok=True)
        box = crop_box(sample.annotations, w, h)
        (folder / "roi.png").write_bytes(_outline_png(sample.roi))
        rel = f"img/{image_id}"
        original = _write_tile(Tile("original", "source"), sample.image, folder, rel, "original",
                               box)
        original.bpp = 8.0 * len(sample.source) / (w * h) if sample.source else math.nan
        if ceilings:  # the run's uncompressed ceiling: its own predictions on the source
            c = ceilings[0]
            original.label, original.quality = c, "source"
            original.detections = _detections(store, task_model, c, points.versions[c],
                                              "source", image_id, names)
        item = GalleryImage(image_id, sample.file_name, w, h, float(sample.roi.mean()),
                            len(sample.annotations), box, f"{rel}/roi.png", original)
        done: dict[tuple[str, str], Tile] = {}
        for t in targets:
            tiles = []
            for k, label in enumerate(labels):
                q = chosen[t].get(label)
                if q is None:
                    tiles.append(Tile(label, "", note="no point with a usable rate"))
                    continue
                if (label, q) not in done:
                    stem = f"{k:02d}-{_slug(label)}-{_slug(q)}"
                    done[(label, q)] = _recon_tile(
                        store, run_dir, kept_recon, decoders, points.versions[label], label, q,
                        sample, folder, rel, stem, box, task_model, names)
                    done[(label, q)].bpp_run = pooled.get((label, q), math.nan)
                tiles.append(done[(label, q)])
            item.tiles[t] = tiles
        gallery.images.append(item)
    return gallery


def _recon_tile(store, run_dir, kept_recon, decoders: _Decoders, version: str, label: str,
                quality: str, sample, folder: Path, rel: str, stem: str,
                box: tuple[int, int, int], task_model, names) -> Tile:
    tile = Tile(label, quality)
    rows = store.results(codec_name(label), version, [quality], [sample.image_id],
                         label=label, with_bitstreams=True)
    if not rows or not rows[0].ok:
        tile.note = "not coded" if not rows else f"coding failed: {rows[0].error}"
        return tile
    row = rows[0]
    tile.bpp, tile.psnr, tile.roi_psnr, tile.bg_psnr = (row.bpp, row.psnr, row.roi_psnr,
                                                        row.bg_psnr)
    try:
        image = kept_recon(run_dir, row)
        if image is None:
            if row.bitstream is None:
                raise GalleryError("the store holds no bitstream for it")
            image = decoders.get(label, version).decode(row.bitstream)
        if image.shape != sample.image.shape:
            raise GalleryError(f"decoded {image.shape[1]}×{image.shape[0]}, the image is "
                               f"{sample.image.shape[1]}×{sample.image.shape[0]}")
    except Exception as exc:  # one picture that cannot be shown says why; the page goes on
        tile.note = f"no picture: {exc}"
        return tile
    _write_tile(tile, image, folder, rel, stem, box)
    tile.detections = _detections(store, task_model, label, version, quality,
                                  sample.image_id, names)
    return tile


def _write_tile(tile: Tile, image: np.ndarray, folder: Path, rel: str, stem: str,
                box: tuple[int, int, int]) -> Tile:
    x, y, s = box
    (folder / f"{stem}.webp").write_bytes(_webp(image, lossless=False))
    crop = np.ascontiguousarray(image[y:y + s, x:x + s])
    (folder / f"{stem}-crop.webp").write_bytes(_webp(crop, lossless=True))
    tile.view, tile.crop = f"{rel}/{stem}.webp", f"{rel}/{stem}-crop.webp"
    return tile
