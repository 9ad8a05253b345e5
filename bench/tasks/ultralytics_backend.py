"""Ultralytics YOLO as a task backend: detection and segmentation models loaded safely.

Which files load, and how (a model file is untrusted input, like an image):

* ``.pt`` checkpoints are pickles, and unpickling can run any code the file names. They are
  loaded only in Ultralytics' safe mode (``ULTRALYTICS_SAFE_LOAD``, Ultralytics >= 8.4.x with
  torch >= 2.6; ultralytics/ultralytics#24829): ``torch.load(weights_only=True)`` against an
  allow-list of Ultralytics and torch layer classes, and the model's ``activation`` read
  without ``eval``. The switch is read when ``ultralytics`` is first imported, so
  :func:`import_ultralytics` sets it before that import and checks it took effect. It covers
  every ``.pt`` Ultralytics loads, the released names it downloads (``yolov8n.pt``) included,
  because they all go through one loader. A checkpoint that needs anything else is refused
  with a message saying why and what to do; nothing in it runs.
* ``.onnx`` (onnxruntime) and ``.tflite`` (ai-edge-litert) are data formats: graphs and
  weights, metadata read as JSON or Python literals.
* Everything else is refused, by suffix and by the format Ultralytics would pick for the
  name (it matches suffixes anywhere in the name): TorchScript (``torch.jit.load`` of an
  untrusted archive), TensorFlow SavedModel (can hold Python code), TensorRT engines,
  CoreML, OpenVINO, Paddle, NCNN and the rest. Export those to ONNX or TFLite.

Quiet and private by default: Ultralytics' settings live in bench's cache directory
(``$XDG_CACHE_HOME/bench/ultralytics``, i.e. ``~/.cache/bench/ultralytics``) unless
``YOLO_CONFIG_DIR`` is set, and a settings file bench makes has ``sync`` (usage events) off;
Ultralytics' INFO chatter (the settings banner, "Loading ... for LiteRT inference") is
dropped and its warnings kept; the TFLite runtime's "Created TensorFlow Lite XNNPACK delegate
for CPU" line is removed from what the model load writes to stderr.

Class index *i* of a COCO model is the *i*-th COCO category in ascending id order;
:meth:`UltralyticsModel.check_categories` checks the names so a model trained on other
classes is never scored silently.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.tasks.base import PredictionSettings, TaskError

#: Model file suffixes bench loads: ``.pt`` through Ultralytics' safe load, the others are
#: data formats.
MODEL_SUFFIXES = (".pt", ".onnx", ".tflite")

_EXPORT_HINT = ("export it to ONNX or TFLite (yolo export model=FILE format=onnx) and pass "
                "that file")


def settings_dir() -> Path:
    """Where bench keeps Ultralytics' settings when ``YOLO_CONFIG_DIR`` is not set."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "bench" / "ultralytics"


class _DropInfo(logging.Filter):
    """Let only warnings and errors of the ``ultralytics`` logger through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@functools.cache
def import_ultralytics():
    """The ``ultralytics`` module, imported the way bench needs it (once per process).

    Before the import: safe loading on (``ULTRALYTICS_SAFE_LOAD=1``, read at import), the
    settings directory bench's own unless ``YOLO_CONFIG_DIR`` is set, INFO logging dropped.
    After it: ``sync`` off in a settings file this import created. Whether safe loading
    took effect is :func:`safe_load_problem`'s question.
    """
    fresh = "ultralytics" not in sys.modules
    existed, settings_file = True, None
    if fresh:
        os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
        if not os.environ.get("YOLO_CONFIG_DIR"):
            folder = settings_dir()
            with contextlib.suppress(OSError):
                folder.mkdir(parents=True, exist_ok=True)
            os.environ["YOLO_CONFIG_DIR"] = str(folder)
        settings_file = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "settings.json"
        existed = settings_file.exists()
        logging.getLogger("ultralytics").addFilter(_DropInfo())
    try:
        import ultralytics
        from ultralytics.utils import SETTINGS
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise TaskError("the ultralytics package is missing: pip install ultralytics") from exc
    made_here = fresh and not existed and Path(SETTINGS.file) == settings_file
    if made_here and SETTINGS.get("sync"):
        with contextlib.suppress(Exception):  # a read-only settings file: nothing to turn off
            SETTINGS.update(sync=False)
    return ultralytics


def safe_load_problem() -> str | None:
    """None when Ultralytics loads ``.pt`` files in its weights-only mode here, else why not."""
    ultralytics = import_ultralytics()
    import torch
    from ultralytics.nn import tasks

    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        return f"torch {torch.__version__} has no weights-only checkpoint scan (needs 2.6+)"
    if not hasattr(tasks, "SAFE_LOAD"):
        return (f"ultralytics {ultralytics.__version__} has no safe-load mode "
                "(ULTRALYTICS_SAFE_LOAD; upgrade ultralytics)")
    if not tasks.SAFE_LOAD:
        return ("ultralytics was imported before bench could switch on its safe-load mode; "
                "set ULTRALYTICS_SAFE_LOAD=1 in the environment")
    return None


def _format_problem(path: Path) -> str | None:
    """None when ``path`` is a kind of model file bench loads, else why it is refused.

    The suffix must be one of :data:`MODEL_SUFFIXES`, and Ultralytics must pick the same
    backend for the name as for a plain ``model<suffix>``: it matches format markers
    anywhere in a name (``best_qnn.onnx`` goes to Qualcomm's runtime, ``x_edgetpu.tflite``
    to the Edge TPU's).
    """
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        kind = f"{path.suffix} files" if path.suffix else "files without a suffix"
        return (f"bench loads only .pt (safely), .onnx and .tflite models, not {kind}; "
                f"{_EXPORT_HINT}")
    import_ultralytics()
    from ultralytics.nn.autobackend import AutoBackend

    picker = getattr(AutoBackend, "_model_type", None)
    if picker is None:  # another Ultralytics: the suffix alone decides
        return None
    expected, found = picker(f"model{suffix}"), picker(str(path))
    if found != expected:
        return (f"Ultralytics would read this file as {found!r}, not {expected!r}, because of "
                f"its name; rename it so that only its suffix says what it is")
    return None


_TFLITE_NOISE = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$")


@contextlib.contextmanager
def _without_tflite_banner() -> Iterator[None]:
    """Run a model load with file descriptor 2 captured; pass on all but the TFLite banner.

    The TFLite runtime writes that line from C++ straight to fd 2, bypassing Python, and has
    no switch for it. Only that one line is dropped; anything else is written back to fd 2.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to clean
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True)
                    if not _TFLITE_NOISE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def _load_error(spec: str, exc: BaseException) -> TaskError:
    """A TaskError for a model Ultralytics could not (or would not) load."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, pickle.UnpicklingError):
            return TaskError(
                f"refused model {spec}: it is not a plain Ultralytics checkpoint; loading it "
                "would construct objects outside the weights-only allow-list (Ultralytics and "
                "torch layers, tensors, numbers), which means running code from the file. "
                f"Nothing in it was run. For a model you trust, {_EXPORT_HINT}"
            )
        cause = cause.__cause__ or cause.__context__
    text = re.sub(r"^\W*ERROR\W*", "", str(exc).strip()).splitlines()
    return TaskError(
        f"cannot load model {spec}: {type(exc).__name__}: {text[0] if text else ''}; pass an "
        "Ultralytics .pt, .onnx or .tflite model file"
    )


@dataclass
class Detections:
    """One image's predictions in original pixel coordinates."""

    boxes_xyxy: np.ndarray  # N×4 float
    scores: np.ndarray  # N
    classes: np.ndarray  # N int, model class indices
    masks: np.ndarray | None  # N×H×W bool at the original resolution, or None


def file_sha256(path: Path) -> str:
    """sha256 of a model file, recorded with every score."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_model_file(spec: str) -> Path | None:
    """The local file a model spec names, or None for a name Ultralytics should download."""
    path = Path(spec).expanduser()
    if path.is_dir():
        raise TaskError(f"model {spec} is a directory; bench loads only .pt, .onnx and "
                        f".tflite model files: pass one, or {_EXPORT_HINT}")
    if path.is_file():
        problem = _format_problem(path)
        if problem:
            raise TaskError(f"refused model {spec}: {problem}")
        return path.resolve()
    if len(path.parts) > 1 or path.suffix not in (".pt",):
        raise TaskError(
            f"model file {spec} not found; pass the path of an Ultralytics .pt, .onnx or "
            ".tflite model (or a released name such as yolov8n.pt to download it)"
        )
    if os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise TaskError(
            f"model {spec} is not a local file and downloads are off (YOLO_OFFLINE is set); "
            "pass --model with the path of a local model file"
        )
    return None


class UltralyticsModel:
    """A loaded YOLO model with a fixed task ('detect' or 'segment') and settings."""

    def __init__(self, spec: str, want_masks: bool, settings: PredictionSettings):
        self.spec = spec
        self.settings = settings
        self.want_masks = want_masks
        local = resolve_model_file(spec)
        import_ultralytics()
        if local is None or local.suffix.lower() == ".pt":
            problem = safe_load_problem()
            if problem:
                raise TaskError(f"refused model {spec}: bench loads .pt checkpoints only in "
                                f"Ultralytics' safe mode, which is not available here: "
                                f"{problem}. Fix that, or {_EXPORT_HINT}")
        from ultralytics import YOLO

        try:
            with _without_tflite_banner(), warnings.catch_warnings():
                # torch's notes on files it then refuses (a pickle's protocol; a TorchScript
                # archive "dispatching to torch.jit.load", which weights_only does not do)
                for note in ("Detected pickle protocol", ".*looks like a TorchScript archive"):
                    warnings.filterwarnings("ignore", note, UserWarning)
                self.model = YOLO(str(local) if local else spec)
        except Exception as exc:  # ultralytics raises many types for a non-model file
            raise _load_error(spec, exc) from exc
        self.path = local or Path(self.model.ckpt_path or spec)
        self.task = self.model.task
        if self.task not in ("detect", "segment"):
            raise TaskError(f"model {spec} is a {self.task!r} model; bench needs detect or "
                            "segment models")
        if want_masks and self.task != "segment":
            raise TaskError(f"model {spec} is a {self.task} model and predicts no masks; "
                            "pass an instance-segmentation model (e.g. yolo11n-seg.pt)")
        self.sha256 = file_sha256(self.path) if self.path.is_file() else "unknown"
        self.names = self._names()

    def _names(self) -> dict[int, str]:
        """Class names; reading them builds the inference backend, which validates the file."""
        try:
            with _without_tflite_banner():
                names = self.model.names
        except Exception as exc:  # exported models are parsed only now
            raise _load_error(self.spec, exc) from exc
        return {int(k): str(v) for k, v in dict(names).items()}

    def check_categories(self, categories: list[dict]) -> dict[int, int]:
        """Map class index → COCO category id after checking that every name agrees."""
        cats = sorted(categories, key=lambda c: c["id"])
        mismatched = [(i, self.names.get(i), c["name"]) for i, c in enumerate(cats)
                      if self.names.get(i) != c["name"]]
        if len(self.names) != len(cats) or mismatched:
            sample = ", ".join(f"class {i}: model {m!r} vs data {d!r}" for i, m, d in
                               mismatched[:3])
            raise TaskError(
                f"model {self.spec} has {len(self.names)} classes that do not match the data "
                f"set's {len(cats)} categories ({sample or 'different counts'}); use a model "
                "trained on COCO's 80 classes"
            )
        return {i: int(c["id"]) for i, c in enumerate(cats)}

    def predict(self, image: np.ndarray) -> Detections:
        """Predictions for an H×W×3 uint8 RGB image (Ultralytics wants BGR arrays)."""
        s = self.settings
        first = self.model.predictor is None  # the first call builds the inference backend
        try:
            with _without_tflite_banner() if first else contextlib.nullcontext():
                (res,) = self.model.predict(
                    np.ascontiguousarray(image[:, :, ::-1]), conf=s.conf, iou=s.iou,
                    max_det=s.max_det, retina_masks=s.retina_masks, verbose=False)
        except Exception as exc:
            raise TaskError(f"model {self.spec} failed: {type(exc).__name__}: {exc}") from exc
        boxes = res.boxes
        masks = None
        if self.want_masks:
            if res.masks is None:
                masks = np.zeros((0, *image.shape[:2]), bool)
            else:
                masks = res.masks.data.cpu().numpy().astype(bool)
            if masks.shape[1:] != image.shape[:2]:
                raise TaskError(f"model {self.spec} returned {masks.shape[1:]} masks for a "
                                f"{image.shape[:2]} image; masks must be at original size")
        return Detections(boxes_xyxy=boxes.xyxy.cpu().numpy().astype(np.float64),
                          scores=boxes.conf.cpu().numpy().astype(np.float64),
                          classes=boxes.cls.cpu().numpy().astype(np.int64), masks=masks)
