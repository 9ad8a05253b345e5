"""Feeding data-set images through codecs and into the results store.

The unit of work is one (codec, image) pair: the worker decodes the source image once and
codes it at every quality still missing, so a run killed midway loses at most the images
in flight. With ``jobs > 1`` the units run in a process pool; the parent alone writes to
the store, committing each row as it arrives.

Each worker process creates a codec once, on its first unit, and makes it ready before any
timed encode (:func:`load_codec`: the codec's ``load()`` hook, then one untimed round trip
of a small synthetic image), so that ``encode_s`` measures coding alone; the time that took
is stored apart, as ``load_s`` of the first row the worker codes with that codec.

Codecs are passed around keyed by their *label* (:mod:`bench.labels`): the registered name
for default options, ``name@key-value…`` otherwise, with the options in
``RunConfig.codec_options[label]``; rows are stored under the name and the label.

Executors: ``local`` (one process, or a process pool of ``jobs`` workers) and ``ray``
(:func:`_run_ray`: one Ray actor per worker slot, on a running cluster or a local Ray instance
of ``jobs`` CPUs). Either way workers return rows, the driver alone writes the store, one
unit at a time as it arrives, so a killed driver loses at most the units in flight and the
same command resumes.

Tasks asked for in the same run (``RunConfig.tasks``) predict on each reconstruction in the
worker that decoded it, right after the timed encode and decode: each worker loads a task's
model once, and the predictions travel back with the row and are committed with it, so a
task never decodes a bitstream a second time nor writes a PNG (:mod:`bench.scoring` decodes
stored bitstreams only for a task added to a finished run).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import CodecError
from bench.labels import codec_name
from bench.store import ImageResult, ResultsStore

#: Metrics a run can compute; ``ms-ssim`` is the only expensive one.
ALL_METRICS = ("psnr", "ms-ssim")


@dataclass(frozen=True)
class RunConfig:
    """What a worker needs to rebuild the data set and codecs in its own process."""

    data_root: str
    split: str = "val2017"
    run_dir: str = "runs/default"
    keep_recon: bool = False
    metrics: tuple[str, ...] = ALL_METRICS
    #: {label: constructor options} of codecs run with non-default options; a ``roi_source``
    #: among them (``--roi pred``) makes the worker encode the mask cached under
    #: RUN_DIR/roi/KEY (:mod:`bench.roi_pred`) instead of the GT ROI
    codec_options: dict = field(default_factory=dict)
    #: ``(task name, model)`` of the tasks that predict on each reconstruction where it was
    #: decoded (``bench run --task``); their predictions come back in ``row.predictions``
    tasks: tuple[tuple[str, str | None], ...] = ()
    #: ``--ship-images``: workers get each image from the driver (no data root needed on
    #: them); the COCO categories then travel here for the tasks' class check
    ship_images: bool = False
    categories: tuple = ()


@dataclass(frozen=True)
class Unit:
    """One image to code with one codec (registered name and label) at the listed qualities."""

    codec: str
    version: str
    image_id: int
    qualities: tuple[str, ...]
    label: str


def recon_path(run_dir: str | Path, label: str, quality: str, image_id: int) -> Path:
    """Where ``--keep-recon`` puts a reconstruction (lossless PNG), per codec label."""
    return Path(run_dir) / "recon" / label / quality / f"{image_id:012d}.png"


#: the PNG text chunk of a kept reconstruction naming the bitstream it was decoded from
RECON_BITSTREAM_KEY = "bench-bitstream-sha256"


def write_kept_recon(run_dir: str | Path, row: ImageResult, recon) -> None:
    """Write ``row``'s reconstruction to :func:`recon_path`, tagged with its bitstream's hash."""
    from bench.data.images import encode_png

    write_atomic(recon_path(run_dir, row.label, row.quality, row.image_id),
                 encode_png(recon, {RECON_BITSTREAM_KEY: row.sha256 or ""}))


def kept_recon(run_dir: str | Path, row: ImageResult):
    """``row``'s kept reconstruction (H×W×3 uint8), or None to decode its bitstream instead.

    None also when the PNG at that path was decoded from another bitstream, or is untagged
    (kept before the tag existed): the path names only label, quality and image, so after a
    codec changes version under the same label (new weights, say) an old run's picture
    there is not this row's, and scoring it would give the new version the old one's AP.
    """
    from bench.data.images import decode_rgb, png_text

    path = recon_path(run_dir, row.label, row.quality, row.image_id)
    if not row.sha256 or not path.is_file():
        return None
    data = path.read_bytes()
    if png_text(data).get(RECON_BITSTREAM_KEY) != row.sha256:
        return None
    return decode_rgb(data, str(path))


# ---------------------------------------------------------------- worker side
_STATE: dict = {}


def _init_worker(cfg: RunConfig, parent_pid: int | None = None) -> None:
    from bench.data.coco import CocoDataset

    _STATE.clear()
    _STATE["cfg"] = cfg
    _STATE["dataset"] = None if cfg.ship_images else CocoDataset(cfg.data_root, cfg.split)
    _STATE["codecs"] = {}
    _STATE["tasks"] = None  # created on the first reconstruction (see _predict)
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    """Workers of a killed run stop instead of computing results nobody will store."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


#: Side in pixels of the synthetic image :func:`load_codec` codes once, untimed.
WARM_UP_SIZE = 64


def load_codec(codec) -> float:
    """Make ``codec`` ready to code; returns the seconds that took (its load time).

    Calls the codec's ``load()`` hook where it has one (weights, tables; looked up with
    getattr, so codecs without it work unchanged), then codes a small synthetic image once,
    round trip, at the codec's lowest-rate quality: whatever a codec still does on its first
    call (a model behind a lazy property, an import inside ``encode``, an external program
    read from disk the first time) is then paid here, not timed as the encode of an image.

    A failing ``load()`` raises: the codec cannot code anything. A failing warm-up round
    trip does not: a codec may refuse so small an image, and a real failure comes back from
    the real encode, stored with its row.
    """
    import numpy as np

    from bench.data.images import encode_png

    t0 = time.perf_counter()
    load = getattr(codec, "load", None)
    if callable(load):
        load()
    size = WARM_UP_SIZE
    y, x = np.mgrid[0:size, 0:size]
    image = np.stack([x * 4, y * 4, (x + y) * 2], axis=2).astype(np.uint8)
    roi = np.zeros((size, size), bool)
    roi[size // 4:3 * size // 4, size // 4:3 * size // 4] = True
    try:
        data = codec.encode_source(image, roi, codec.qualities[0], encode_png(image))
        codec.decode(data)
    except Exception:  # see the docstring: the real encode reports it
        pass
    codec.last_command = None
    return time.perf_counter() - t0


def _codec(unit: Unit):
    """The worker's codec for ``unit``'s label, and its load time if this call created it.

    A codec is kept only once :func:`load_codec` succeeded, so a failed load is tried
    again (and reported again) with the next unit.
    """
    from bench.registry import create_codec

    codecs = _STATE["codecs"]
    if unit.label in codecs:
        return codecs[unit.label], None
    t0 = time.perf_counter()
    options = _STATE["cfg"].codec_options.get(unit.label, {})
    codec = create_codec(unit.codec, **options)
    load_codec(codec)
    if codec.version() != unit.version:  # e.g. new weights exported since the run planned
        raise CodecError(f"{unit.label} is now version {codec.version()!r}, the run planned "
                         f"{unit.version!r} (its weights or encoder changed since the run "
                         "started); run the command again to code it under the new version")
    codecs[unit.label] = codec
    return codec, time.perf_counter() - t0


def code_unit(unit: Unit, sample=None) -> list[ImageResult]:
    """Code one image at each quality of ``unit``; failures become error rows.

    ``sample`` is the image when the driver ships it (``--ship-images``); else the worker
    reads it from the data root.
    """
    cfg: RunConfig = _STATE["cfg"]
    rows = _rows(unit)
    try:
        codec, load_s = _codec(unit)
    except Exception as exc:  # a codec that cannot load fails its rows; the run goes on
        for row in rows:
            row.error = f"loading the codec failed: {describe_error(exc)}"
        return rows
    rows[0].load_s = load_s
    try:
        if sample is None:
            sample = _STATE["dataset"].load(unit.image_id)
    except Exception as exc:  # a bad image becomes an error row; the run goes on
        for row in rows:
            row.error = describe_error(exc)
        return rows
    encoder_roi = sample.roi  # the GT ROI, unless the codec encodes a predicted one
    roi_source = cfg.codec_options.get(unit.label, {}).get("roi_source")
    if roi_source is not None:
        from bench.roi_pred import RoiCache

        try:
            encoder_roi = RoiCache(cfg.run_dir, roi_source).get(unit.image_id,
                                                                sample.image.shape[:2])
        except Exception as exc:
            for row in rows:
                row.error = describe_error(exc)
            return rows
    for row in rows:
        row.file_name = sample.file_name
        row.height, row.width = sample.image.shape[:2]
        try:
            recon = _code_one(codec, sample, row, cfg.metrics, encoder_roi)
            if cfg.tasks:
                row.predictions = _predict(recon, row.image_id)
            if cfg.keep_recon:
                write_kept_recon(cfg.run_dir, row, recon)
        except Exception as exc:  # one failed encode must not lose the other rows
            row.error = describe_error(exc)
    return rows


def _code_one(codec, sample, row: ImageResult, metrics: Sequence[str], encoder_roi):
    """Code ``sample`` with the ROI ``encoder_roi``; measure against the GT ROI."""
    from bench.metrics import MS_SSIM_SKIPPED, ms_ssim, region_psnrs

    codec.last_command = None
    t0 = time.perf_counter()
    data = codec.encode_source(sample.image, encoder_roi, row.quality, sample.source)
    t1 = time.perf_counter()
    if codec.last_command:
        row.command = shlex.join(map(str, codec.last_command))
    recon = codec.decode(data)
    t2 = time.perf_counter()
    if recon.shape != sample.image.shape or recon.dtype != sample.image.dtype:
        raise ValueError(
            f"codec {row.label} decoded a {recon.dtype} image of shape {recon.shape}, "
            f"expected uint8 {sample.image.shape}"
        )
    row.encode_s, row.decode_s = t1 - t0, t2 - t1
    row.bytes = len(data)
    row.bpp = 8.0 * len(data) / sample.pixels
    row.sha256 = hashlib.sha256(data).hexdigest()
    row.bitstream = data
    row.psnr, row.roi_psnr, row.bg_psnr, notes = region_psnrs(sample.image, recon, sample.roi)
    if "ms-ssim" in metrics:
        row.ms_ssim, why = ms_ssim(sample.image, recon)
        if why:
            notes.append(why)
    else:
        notes.append(MS_SSIM_SKIPPED)
    row.notes = "; ".join(notes)
    return recon


def _worker_tasks() -> list:
    """This worker's task objects (models loaded once), or the error that stopped them."""
    if _STATE.get("tasks") is None:
        from bench.registry import TASKS

        cfg = _STATE["cfg"]
        categories = (list(cfg.categories) if cfg.ship_images
                      else _STATE["dataset"].coco.dataset["categories"])
        tasks = []
        for name, model in cfg.tasks:
            try:
                task = TASKS.create(name, model=model)
                task.check_categories(categories)
                tasks.append(task)
            except Exception as exc:  # skipped in _predict: the driver scores those rows
                tasks.append(exc)
        _STATE["tasks"] = tasks
    return _STATE["tasks"]


def _predict(recon, image_id: int) -> list[tuple]:
    """``(task, model key, results, error, seconds)`` of every task of the run on ``recon``;
    a task that fails gives an error entry (stored as the prediction's error)."""
    from bench.scoring import predict_image

    out = []
    for (name, _), task in zip(_STATE["cfg"].tasks, _worker_tasks(), strict=True):
        if isinstance(task, Exception):
            continue  # its model did not load here: the driver predicts these rows itself
        out.append((name, task.model_key(), *predict_image(task, recon, image_id)))
    return out


def describe_error(exc: BaseException) -> str:
    """How a failure is written into a row or a prediction: ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (parents made) through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------- parent side
def plan_units(
    store: ResultsStore,
    codecs: dict[str, object],
    qualities: dict[str, Sequence[str]],
    image_ids: Sequence[int],
    *,
    force: bool = False,
    retry_errors: bool = False,
) -> list[Unit]:
    """The (codec, image) units whose rows are not in the store yet.

    ``codecs`` and ``qualities`` are keyed by label. Work is found missing by (codec name,
    version), and a version names every option, so two labels never share rows; each
    label first claims its version's rows (:meth:`ResultsStore.claim_label`).
    """
    units = []
    for label, codec in codecs.items():
        name, version = codec_name(label), codec.version()
        store.claim_label(name, version, label)
        done = set() if force else store.done(name, version, with_errors=not retry_errors)
        for image_id in image_ids:
            missing = tuple(q for q in qualities[label] if (q, image_id) not in done)
            if missing:
                units.append(Unit(name, version, image_id, missing, label))
    return units


def execute(
    units: Sequence[Unit],
    cfg: RunConfig,
    store: ResultsStore,
    *,
    jobs: int = 1,
    on_row: Callable[[ImageResult], None] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> int:
    """Run the units, committing every row as soon as it exists; return rows written.

    ``executor``: ``local`` (``jobs`` processes) or ``ray`` (``ray_address``, else
    ``$RAY_ADDRESS``, else a local Ray instance of ``jobs`` CPUs).
    """
    written = 0

    def commit(rows: list[ImageResult]) -> None:
        nonlocal written
        for row in rows:
            store.put(row)
            for task, model_key, results, error, seconds in row.predictions or ():
                store.put_prediction(row.key, task, model_key, results, error, seconds)
            written += 1
            if on_row is not None:
                on_row(row)

    if executor == "ray":
        _run_ray(list(units), cfg, jobs, commit, ray_address)
        return written
    if executor != "local":
        raise ValueError(f"unknown executor {executor!r}; choose local or ray")
    if jobs <= 1:
        _init_worker(cfg)
        for unit in units:
            commit(code_unit(unit))
        return written

    pending, suspects = list(reversed(units)), []
    while pending:  # a crashed worker breaks the pool: set its units aside, start a new pool
        _run_pool(pending, cfg, jobs, commit, suspects)
    suspects.reverse()
    while suspects:  # each alone, so that a crash names the unit that caused it
        _run_pool(suspects, cfg, 1, commit, None)
    return written


def _run_pool(pending: list[Unit], cfg: RunConfig, jobs: int, commit,
              suspects: list[Unit] | None) -> None:
    """Drain ``pending`` (taken from its end) through one process pool; stop if it breaks.

    When a worker process dies (a segfault or the OOM killer in a codec's native code), the
    pool breaks and every unit in flight with it fails, and nothing tells which one killed
    it. Units that had finished are committed; the others go to ``suspects``, which
    :func:`execute` then runs one at a time (``suspects=None``: one unit in flight), where
    a crash becomes error rows of that unit alone.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    running: dict[Future, Unit] = {}
    limit = 1 if suspects is None else 2 * jobs
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(cfg, os.getpid())) as pool:
        while pending or running:
            while pending and len(running) < limit:
                try:  # a worker may have died since the last wait: the pool refuses work
                    fut = pool.submit(code_unit, pending[-1])
                except BrokenProcessPool:
                    if not running:  # nothing in flight will report it: start a new pool
                        return
                    break  # the units in flight fail with BrokenProcessPool below
                running[fut] = pending.pop()
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                unit = running.pop(fut)
                try:
                    rows = fut.result()
                except BrokenProcessPool as exc:
                    if suspects is None:
                        commit(_error_rows(unit, RuntimeError(
                            f"the worker process died while coding this image ({exc})")))
                        return
                    suspects.append(unit)
                    for other, other_unit in running.items():
                        if other.done() and other.exception() is None:
                            commit(other.result())
                        else:
                            suspects.append(other_unit)
                    return
                except Exception as exc:  # the unit failed outside code_unit's guard
                    rows = _error_rows(unit, exc)
                commit(rows)  # outside the guard: a store that fails stops the run


class _RayWorker:
    """One Ray actor: a worker process with its codecs and task models, kept across units."""

    def __init__(self, cfg: RunConfig) -> None:
        _init_worker(cfg)

    def code(self, unit: Unit, sample=None) -> list[ImageResult]:
        return code_unit(unit, sample)


#: Environment variables the Ray workers get from the driver (data, models, VTM, offline).
_RAY_ENV_PREFIXES = ("BENCH_", "YOLO_", "IMAGEIO_FFMPEG_EXE", "MPLCONFIGDIR")


@contextmanager
def _local_worker_niceness(local: bool):
    """Start a local Ray instance (``local``) whose workers run at the driver's niceness.

    Ray runs its workers at nice 15 by default (``RAY_worker_niceness``) so that its own
    daemons stay responsive; on a shared machine that makes every other process, even a
    niced background job, take the CPU before them (measured here beside a nice-10 training
    run: detection 4.3x and decoding 2.3x slower than in the local pool). The setting is an
    increment over the raylet's niceness, which a local instance inherits from the driver,
    so 0 gives the workers the driver's niceness, as the local pool's workers have, unless
    ``RAY_worker_niceness`` is set; a cluster keeps what ``ray start`` was given.
    """
    key = "RAY_worker_niceness"
    if not local or key in os.environ:
        yield
        return
    os.environ[key] = "0"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _run_ray(units: list[Unit], cfg: RunConfig, jobs: int, commit,
             address: str | None) -> None:
    """Drain ``units`` through ``jobs`` Ray actors (see the module doc).

    An actor that dies is restarted and its unit retried (Ray's ``max_restarts`` and
    ``max_task_retries``); a unit that still fails becomes error rows. The driver commits
    each unit's rows once, when its result arrives, so a retried unit is never stored twice.
    """
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install -e \".[ray]\"") from None

    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {k: v for k, v in os.environ.items() if k.startswith(_RAY_ENV_PREFIXES)}
    started = not ray.is_initialized()
    if started:  # a local instance inherits this environment; a cluster's workers get it
        options = {"address": address, "runtime_env": {"env_vars": env}} if address else {
            "num_cpus": jobs}
        with _local_worker_niceness(not address):
            ray.init(**options, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    try:
        actor = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(_RayWorker)
        workers = [actor.remote(cfg) for _ in range(max(1, jobs))]
        dataset = None
        if cfg.ship_images:
            from bench.data.coco import CocoDataset

            dataset = CocoDataset(cfg.data_root, cfg.split)
        pending = list(reversed(units))
        running: dict = {}
        idle = list(range(len(workers)))  # one unit per actor at a time: units differ in
        while pending or running:         # length by 100x, so no actor queues behind another
            while pending and idle:
                unit = pending.pop()
                sample = None
                if dataset is not None:  # --ship-images: the driver reads the image
                    try:
                        sample = dataset.load(unit.image_id)
                    except Exception as exc:  # a bad image becomes error rows, as locally
                        commit(_error_rows(unit, exc))
                        continue
                slot = idle.pop()
                running[workers[slot].code.remote(unit, sample)] = (unit, slot)
            if not running:
                continue
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                unit, slot = running.pop(ref)
                idle.append(slot)
                try:
                    rows = ray.get(ref)
                except Exception as exc:  # the unit failed on every try
                    rows = _error_rows(unit, RuntimeError(f"Ray worker failed: {exc}"))
                commit(rows)  # outside the guard: a store that fails stops the run
    finally:
        if started:
            ray.shutdown()


def _rows(unit: Unit) -> list[ImageResult]:
    return [ImageResult(unit.codec, unit.version, q, unit.image_id, label=unit.label)
            for q in unit.qualities]


def _error_rows(unit: Unit, exc: BaseException) -> list[ImageResult]:
    rows = _rows(unit)
    for row in rows:
        row.error = describe_error(exc)
    return rows


def progress_bar(total: int, desc: str, disable: bool = False, unit: str = "img"):
    """A tqdm bar on stderr counting ``unit``; off with ``disable`` or BENCH_PROGRESS=0."""
    from tqdm import tqdm

    disable = disable or os.environ.get("BENCH_PROGRESS") == "0"
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable,
                dynamic_ncols=True)
