"""One pipeline from image to score: plan what is missing → code → measure → predict → commit.

``bench run`` and ``bench check`` (and through them the benchmarks, which call those
commands) drive coding work only through :class:`Pipeline`; nothing under ``bench/report/``
runs a codec. A pipeline is one set of images, codecs (keyed by label, :mod:`bench.labels`)
with their qualities, and tasks, bound to one results store:

1. :meth:`Pipeline.plan` finds the (codec, image) units whose rows the store lacks;
2. :meth:`Pipeline.code` has an executor (:func:`bench.runner.execute`: a local process
   pool or a Ray cluster) encode, decode and measure them; the tasks predict on each
   reconstruction in the worker that decoded it; the driver commits each unit as it arrives;
3. :meth:`Pipeline.predict` predicts on stored rows that still lack a task's predictions
   (a task added to a finished run, or a worker whose model did not load), decoding the
   stored bitstream (or reading a ``--keep-recon`` PNG): it never re-encodes;
4. :meth:`Pipeline.score` turns the stored predictions of one (label, quality) into COCO AP.

Work is committed row by row, so a killed run loses at most the units in flight and the
same pipeline resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.labels import codec_name
from bench.runner import ALL_METRICS, RunConfig, Unit, execute, plan_units
from bench.scoring import missing_predictions, predict_rows, score
from bench.store import ImageResult, ResultsStore


@dataclass
class Pipeline:
    """The work of one run: ``dataset``'s images × ``codecs`` at ``qualities``, + ``tasks``.

    ``codecs`` and ``qualities`` are keyed by label; ``codec_options`` holds the constructor
    options of labels that need them (workers rebuild their codecs from them); ``tasks`` are
    task objects (:mod:`bench.tasks`) and ``task_models`` their model spec by task name,
    as workers load them.
    """

    store: ResultsStore
    dataset: object  # bench.data.coco.CocoDataset
    codecs: dict
    qualities: dict[str, Sequence[str]]
    run_dir: str
    tasks: Sequence = ()
    task_models: dict[str, str | None] = field(default_factory=dict)
    metrics: tuple[str, ...] = ALL_METRICS
    codec_options: dict = field(default_factory=dict)
    keep_recon: bool = False
    ship_images: bool = False

    @property
    def image_ids(self) -> list[int]:
        return list(self.dataset.ids)

    def plan(self, *, force: bool = False, retry_errors: bool = False) -> list[Unit]:
        """The units whose rows are missing (all of them with ``force``; failed rows too
        with ``retry_errors``)."""
        return plan_units(self.store, self.codecs, self.qualities, self.image_ids,
                          force=force, retry_errors=retry_errors)

    def config(self) -> RunConfig:
        """What each worker needs to rebuild the data set, codecs and task models."""
        categories = ()
        if self.ship_images:  # workers without the data root check the tasks' classes here
            categories = tuple(self.dataset.coco.dataset["categories"])
        return RunConfig(data_root=str(self.dataset.root), split=self.dataset.split,
                         run_dir=str(self.run_dir), keep_recon=self.keep_recon,
                         metrics=self.metrics, codec_options=self.codec_options,
                         tasks=tuple((t.name, self.task_models.get(t.name))
                                     for t in self.tasks),
                         ship_images=self.ship_images, categories=categories)

    def code(self, units: Sequence[Unit], *, jobs: int = 1, executor: str = "local",
             ray_address: str | None = None,
             on_row: Callable[[ImageResult], None] | None = None) -> int:
        """Code, measure and predict ``units`` with the executor; returns rows committed."""
        if not units:
            return 0
        for task in self.tasks:  # provenance of the predictions the workers will return
            self.store.put_model(task.model_key(), task.model_info())
        return execute(units, self.config(), self.store, jobs=jobs, on_row=on_row,
                       executor=executor, ray_address=ray_address)

    def missing_predictions(self, task, *, force: bool = False,
                            retry_errors: bool = False) -> list[ImageResult]:
        """Stored rows of this run without ``task``'s predictions."""
        return missing_predictions(self.store, task, self.codecs, self.qualities,
                                   self.image_ids, force=force, retry_errors=retry_errors)

    def predict(self, task, rows: Sequence[ImageResult],
                on_done: Callable[[], None] | None = None) -> None:
        """Predict ``task`` on stored ``rows`` (decoding their bitstreams) and commit."""
        predict_rows(self.store, task, self.codecs, rows, self.run_dir, on_done=on_done)

    def rows(self) -> list[ImageResult]:
        """This run's stored rows, codec by codec."""
        out = []
        for label, codec in self.codecs.items():
            out += self.store.results(codec_name(label), codec.version(),
                                      self.qualities[label], self.image_ids)
        return out

    def score(self, task, label: str, quality: str, evaluator: str = "pycocotools") -> dict:
        """COCO AP of ``task`` on one (label, quality) over this run's images."""
        return score(self.store, self.dataset.coco, task, codec_name(label),
                     self.codecs[label].version(), quality, self.image_ids, evaluator)
