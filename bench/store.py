"""The results store: one SQLite file per run directory, one row per coded image.

A row's key is (codec, codec version, quality, image id): anything already stored under a
key is skipped by the next run, which makes runs resumable, and a new codec version never
mixes with old numbers. Every row is committed on its own, in WAL mode, so a run killed
with SIGKILL loses at most the images that were in flight. Bitstreams are kept in the row
so tasks can re-decode without re-encoding.

Each row also carries its run's *label* (:mod:`bench.labels`: the codec name, plus
``@key-value`` per non-default option, e.g. ``ggm@roi-none``), which reports group by. A
codec's version names every option that changes its output, so one (codec, version) has one
label. Stores made before labels get the ``label`` column added in place (same schema
number; older benches still read and write them); a row without a label reads as the codec
name, the default label, until a run of its (codec, version) under another label claims it
(:meth:`ResultsStore.claim_label`).

``load_s`` is the time a worker process spent creating, loading and warming up a codec
before its first timed encode (:func:`bench.runner.load_codec`). It is kept on the first row
that worker coded with that codec, and nowhere else, so ``encode_s`` measures coding alone;
it is not part of the key, and stores from before it get the column added in place.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

DB_NAME = "results.sqlite"
SCHEMA_VERSION = 1


@dataclass
class ImageResult:
    """Everything measured for one (codec, version, quality, image)."""

    codec: str
    codec_version: str
    quality: str
    image_id: int
    file_name: str = ""
    width: int = 0
    height: int = 0
    bytes: int | None = None
    bpp: float | None = None
    psnr: float = math.nan
    roi_psnr: float = math.nan
    bg_psnr: float = math.nan
    ms_ssim: float = math.nan
    encode_s: float | None = None
    decode_s: float | None = None
    sha256: str | None = None
    notes: str = ""
    error: str | None = None
    command: str | None = None
    bitstream: bytes | None = None
    #: the run's label (:mod:`bench.labels`); empty (NULL in an old row) means the codec name
    label: str = ""
    #: seconds the worker spent creating, loading and warming up the codec before this row,
    #: on the first row each worker process codes with a codec; None on the others
    load_s: float | None = None
    #: task predictions made where the row was decoded, on their way to the store's
    #: predictions table: ``(task, model key, results, error, seconds)`` each; not a column
    predictions: list | None = field(default=None, repr=False, metadata={"column": False})

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.codec

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.codec, self.codec_version, self.quality, self.image_id)

    @property
    def ok(self) -> bool:
        return self.error is None


_FIELDS = [f.name for f in fields(ImageResult) if f.metadata.get("column", True)]
#: Columns added to the results table after stores were first written, with their types:
#: a store without them gets them in place (NULL in its old rows).
_ADDED_COLUMNS = {"label": "TEXT", "load_s": "REAL"}
_FLOAT_METRICS = ("psnr", "roi_psnr", "bg_psnr", "ms_ssim")


class StoreError(RuntimeError):
    """The run directory's database cannot be used; the message says which file and why."""


class ResultsStore:
    """Read and write the results of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / DB_NAME
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable results database ({exc}); "
                "choose another --run-dir or move the file away"
            ) from exc

    def _create(self) -> None:
        cols = ", ".join(_FIELDS)
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS results ({cols}, "
                "created REAL, PRIMARY KEY (codec, codec_version, quality, image_id))"
            )
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS predictions (codec TEXT, codec_version TEXT, "
                "quality TEXT, image_id INTEGER, task TEXT, model_key TEXT, results TEXT, "
                "error TEXT, predict_s REAL, created REAL, PRIMARY KEY (codec, codec_version, "
                "quality, image_id, task, model_key))"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS models (model_key TEXT PRIMARY KEY, "
                            "info TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS scores (codec TEXT, codec_version TEXT, "
                "quality TEXT, task TEXT, model_key TEXT, iou_type TEXT, digest TEXT, "
                "images INTEGER, stats TEXT, PRIMARY KEY (codec, codec_version, quality, task, "
                "model_key, iou_type, digest))"
            )
            have = {r[1] for r in self.db.execute("PRAGMA table_info(results)")}
            for column, kind in _ADDED_COLUMNS.items():  # an older store: add it in place
                if column not in have:
                    try:
                        self.db.execute(f"ALTER TABLE results ADD COLUMN {column} {kind}")
                    except sqlite3.OperationalError as exc:  # another run added it first
                        if "duplicate column" not in str(exc):
                            raise
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema {row[0]}, this bench writes {SCHEMA_VERSION}; "
                    "use a new --run-dir"
                )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put(self, result: ImageResult) -> bool:
        """Insert or replace one row and commit it at once; return whether it was written.

        A failed row never replaces a good one of the same key (a ``--force`` recompute whose
        worker could not load the codec, or a second run on the same folder failing where
        the first succeeded): the stored result stays and False is returned.

        A replaced row whose bitstream differs (a ``--force`` recode by an encoder that is
        not bit-exact across machines, say) loses its task predictions in the same
        transaction: they were made on the old reconstruction, and scoring them under the
        new bitstream would mix two pictures; the next run with ``--task`` predicts again.
        """
        values = asdict(result)
        columns = [*_FIELDS, "created"]
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        key = (result.codec, result.codec_version, result.quality, result.image_id)
        where = "codec=? AND codec_version=? AND quality=? AND image_id=?"
        with self.db:
            old = self.db.execute(f"SELECT sha256 FROM results WHERE {where}", key).fetchone()
            cursor = self.db.execute(
                f"INSERT INTO results ({', '.join(columns)}) VALUES ({marks}) "
                "ON CONFLICT (codec, codec_version, quality, image_id) DO UPDATE SET "
                f"{updates} WHERE excluded.error IS NULL OR results.error IS NOT NULL",
                [values[f] for f in _FIELDS] + [time.time()],
            )
            written = cursor.rowcount > 0
            if written and old is not None and old[0] != result.sha256:
                self.db.execute(f"DELETE FROM predictions WHERE {where}", key)
        return written

    def done(
        self, codec: str, version: str, *, with_errors: bool = True
    ) -> set[tuple[str, int]]:
        """(quality, image id) pairs already stored for a codec version."""
        sql = "SELECT quality, image_id FROM results WHERE codec=? AND codec_version=?"
        if not with_errors:
            sql += " AND error IS NULL"
        return {(q, int(i)) for q, i in self.db.execute(sql, (codec, version))}

    def claim_label(self, codec: str, version: str, label: str) -> None:
        """Make ``label`` the label of every row of (codec, version), before a run adds rows.

        Rows without a label (written before labels existed) take it; rows already stored
        under another label mean the codec's version does not name an option that changes
        its output, and raise :class:`StoreError` rather than mix two runs under one key.
        """
        others = [r[0] for r in self.db.execute(
            "SELECT DISTINCT label FROM results WHERE codec=? AND codec_version=? AND "
            "label IS NOT NULL AND label != ?", (codec, version, label))]
        if others:
            raise StoreError(
                f"{self.path}: codec {codec} version {version!r} is stored as "
                f"{', '.join(others)}, but this run labels it {label}; the codec's version() "
                "must name every option that changes its output (or use another --run-dir)")
        with self.db:
            self.db.execute("UPDATE results SET label=? WHERE codec=? AND codec_version=? AND "
                            "label IS NULL", (label, codec, version))

    def results(
        self,
        codec: str | None = None,
        version: str | None = None,
        qualities: Sequence[str] | None = None,
        image_ids: Iterable[int] | None = None,
        *,
        with_bitstreams: bool = False,
        label: str | None = None,
    ) -> list[ImageResult]:
        """Stored rows matching every filter given, ordered by codec, quality, image.

        ``label`` matches a row's label, or the codec name for a row without one.
        """
        names = [f for f in _FIELDS if with_bitstreams or f != "bitstream"]
        where, args = [], []
        for col, val in (("codec", codec), ("codec_version", version),
                         ("COALESCE(label, codec)", label)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        sql = f"SELECT {', '.join(names)} FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY codec, quality, image_id"
        wanted_q = set(qualities) if qualities is not None else None
        wanted_i = set(image_ids) if image_ids is not None else None
        out = []
        for row in self.db.execute(sql, args):
            rec = dict(zip(names, row, strict=True))
            if wanted_q is not None and rec["quality"] not in wanted_q:
                continue
            if wanted_i is not None and rec["image_id"] not in wanted_i:
                continue
            for m in _FLOAT_METRICS:  # SQLite stores NaN as NULL
                if rec[m] is None:
                    rec[m] = math.nan
            out.append(ImageResult(**rec))
        return out

    def bitstream(self, codec: str, version: str, quality: str, image_id: int) -> bytes | None:
        """The stored bitstream of one row, or None."""
        row = self.db.execute(
            "SELECT bitstream FROM results WHERE codec=? AND codec_version=? AND quality=? "
            "AND image_id=?",
            (codec, version, quality, image_id),
        ).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------ provenance
    #: At most this many command lines are kept (the oldest are dropped).
    MAX_COMMANDS = 100

    def add_command(self, command: str, machine: dict | None = None) -> None:
        """Record a command line that wrote to this store (``bench run …``), once each, in
        the order first seen, and the machine it ran on (``machine``: the
        :func:`bench.report.check.environment_fingerprint` there), once per distinct machine.

        Why the machine: the learned codecs' bytes and the int8 detectors' AP depend on the
        CPU kind (README, under the leaderboard), so a report names where its rows came from.
        A command resumed on a second machine lists both; its rows may come from either.
        The read and the write are one transaction that holds the write lock from the start,
        so two processes recording commands at the same instant both keep theirs.
        """
        with self.db:  # commits on leaving (an early return too), rolls back on an error
            if not self.db.in_transaction:
                self.db.execute("BEGIN IMMEDIATE")
            have = self.commands()
            machines = self.command_machines()
            changed = command not in have
            if changed:
                have = (have + [command])[-self.MAX_COMMANDS:]
            if machine is not None and machine not in machines.get(command, []):
                machines.setdefault(command, []).append(machine)
                changed = True
            if not changed:
                return
            machines = {c: m for c, m in machines.items() if c in have}
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('commands', ?)",
                            (json.dumps(have),))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('command_machines', ?)",
                            (json.dumps(machines),))

    def commands(self) -> list[str]:
        """The command lines recorded with :meth:`add_command`, oldest first."""
        row = self.db.execute("SELECT value FROM meta WHERE key='commands'").fetchone()
        return [] if row is None else list(json.loads(row[0]))

    def command_records(self) -> list[tuple[str, list[dict]]]:
        """(command line, the machines it ran on) for each recorded command, oldest first;
        [] machines for a command recorded before :meth:`add_command` kept them."""
        machines = self.command_machines()
        return [(c, machines.get(c, [])) for c in self.commands()]

    def command_machines(self) -> dict[str, list[dict]]:
        """{command line: the machines it ran on, in the order first seen}; commands recorded
        before :meth:`add_command` kept the machine are absent."""
        row = self.db.execute("SELECT value FROM meta WHERE key='command_machines'").fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    # ------------------------------------------------------------ task predictions
    def put_model(self, model_key: str, info: dict) -> None:
        """Record a task model's provenance (path, sha256, settings) under its key."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?)",
                            (model_key, json.dumps(info, sort_keys=True)))

    def model_info(self, model_key: str) -> dict | None:
        row = self.db.execute("SELECT info FROM models WHERE model_key=?",
                              (model_key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_prediction(self, key: tuple[str, str, str, int], task: str, model_key: str,
                       results: list[dict] | None, error: str | None,
                       seconds: float | None) -> None:
        """Store one image's COCO results (or its error) for a task model, committed at once."""
        text = None if results is None else json.dumps(results, separators=(",", ":"))
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, task, model_key, text, error, seconds, time.time()))

    def predicted(self, codec: str, version: str, task: str, model_key: str, *,
                  with_errors: bool = True) -> set[tuple[str, int]]:
        """(quality, image id) pairs that already have predictions for a task model."""
        sql = ("SELECT quality, image_id FROM predictions WHERE codec=? AND codec_version=? "
               "AND task=? AND model_key=?")
        if not with_errors:
            sql += " AND error IS NULL"
        return {(q, int(i)) for q, i in self.db.execute(sql, (codec, version, task, model_key))}

    def predictions(self, codec: str, version: str, quality: str, task: str, model_key: str,
                    image_ids: Iterable[int]) -> tuple[dict[int, str], dict[int, str]]:
        """({image id: results JSON}, {image id: error}) for the given images."""
        wanted = set(image_ids)
        ok, bad = {}, {}
        for image_id, text, error in self.db.execute(
                "SELECT image_id, results, error FROM predictions WHERE codec=? AND "
                "codec_version=? AND quality=? AND task=? AND model_key=?",
                (codec, version, quality, task, model_key)):
            if image_id in wanted:
                (bad if error is not None else ok)[image_id] = error if error else text
        return ok, bad

    def cached_score(self, key: tuple, digest: str) -> dict | None:
        """A COCO score computed before from exactly the same predictions, or None."""
        row = self.db.execute(
            "SELECT stats FROM scores WHERE codec=? AND codec_version=? AND quality=? AND "
            "task=? AND model_key=? AND iou_type=? AND digest=?", (*key, digest)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_score(self, key: tuple, digest: str, images: int, stats: dict) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (*key, digest, images, json.dumps(stats)))
