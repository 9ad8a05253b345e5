"""The SQLite results store: round trip of rows, NaN/inf, keys, a broken database file, and
stores written before labels."""

from __future__ import annotations

import math
import sqlite3

import pytest

from bench.store import ImageResult, ResultsStore, StoreError


def test_rows_round_trip_with_nan_and_inf(tmp_path):
    with ResultsStore(tmp_path / "run") as store:
        row = ImageResult("jpeg", "v1", "q5", 7, file_name="a.jpg", width=4, height=2, bytes=10,
                          bpp=10.0, psnr=math.inf, roi_psnr=math.nan, bg_psnr=31.5,
                          notes="empty ROI", bitstream=b"\x00\x01")
        store.put(row)
        store.put(ImageResult("jpeg", "v1", "q9", 7, error="boom"))
        assert store.done("jpeg", "v1") == {("q5", 7), ("q9", 7)}
        assert store.done("jpeg", "v1", with_errors=False) == {("q5", 7)}
        assert store.done("jpeg", "v2") == set()
    with ResultsStore(tmp_path / "run") as store:  # reopened: the rows are durable
        (back,) = store.results("jpeg", "v1", ["q5"], [7], with_bitstreams=True)
        assert back.psnr == math.inf and math.isnan(back.roi_psnr) and back.bg_psnr == 31.5
        assert back.bitstream == b"\x00\x01" and back.ok
        assert store.bitstream("jpeg", "v1", "q5", 7) == b"\x00\x01"
        assert [r.error for r in store.results(qualities=["q9"])] == ["boom"]


def test_replacing_a_row_keeps_one(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.put(ImageResult("c", "v", "q", 1, bytes=1))
        store.put(ImageResult("c", "v", "q", 1, bytes=2))
        assert [r.bytes for r in store.results()] == [2]


def test_a_failed_row_never_replaces_a_good_one(tmp_path):
    """A --force recompute whose worker failed (or a second run on the same folder failing
    where the first succeeded) keeps the stored result; a good row replaces a failed one."""
    with ResultsStore(tmp_path) as store:
        assert store.put(ImageResult("c", "v", "q", 1, bytes=5, bpp=1.0))
        assert not store.put(ImageResult("c", "v", "q", 1, error="MemoryError: load"))
        (kept,) = store.results()
        assert kept.ok and kept.bytes == 5
        assert store.put(ImageResult("c", "v", "q", 2, error="boom"))
        assert store.put(ImageResult("c", "v", "q", 2, error="boom again"))
        assert store.put(ImageResult("c", "v", "q", 2, bytes=7))
        assert {r.image_id: (r.ok, r.bytes) for r in store.results()} == {1: (True, 5),
                                                                          2: (True, 7)}


def test_a_new_bitstream_drops_the_predictions_made_on_the_old_one(tmp_path):
    """Predictions belong to a reconstruction: a recode that gives other bytes (a --force run
    on a machine where the encoder is not bit-exact) must not be scored with the old
    picture's detections; the same bytes again, or a failed recode, keep them."""
    key = ("c", "v", "q", 1)

    def predicted(store):
        return store.predicted("c", "v", "det", "m")

    with ResultsStore(tmp_path) as store:
        store.put(ImageResult(*key, bytes=5, sha256="aa"))
        store.put_prediction(key, "det", "m", [{"score": 0.9}], None, 0.1)
        store.put_prediction(("c", "v", "q", 2), "det", "m", [], None, 0.1)
        store.put(ImageResult(*key, bytes=5, sha256="aa"))  # bit-exact recode
        assert predicted(store) == {("q", 1), ("q", 2)}
        assert not store.put(ImageResult(*key, error="boom"))  # kept: so are its predictions
        assert predicted(store) == {("q", 1), ("q", 2)}
        assert store.put(ImageResult(*key, bytes=6, sha256="bb"))
        assert predicted(store) == {("q", 2)}  # only the recoded image's went
    with ResultsStore(tmp_path) as store:  # and that was committed
        assert predicted(store) == {("q", 2)}


def test_not_a_database(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="results.sqlite.*--run-dir"):
        ResultsStore(tmp_path)


# The results table as bench wrote it before labels (no label column).
_OLD_RESULTS = (
    "CREATE TABLE results (codec, codec_version, quality, image_id, file_name, width, height, "
    "bytes, bpp, psnr, roi_psnr, bg_psnr, ms_ssim, encode_s, decode_s, sha256, notes, error, "
    "command, bitstream, created REAL, PRIMARY KEY (codec, codec_version, quality, image_id))")


def _old_store(path):
    """A store made by a bench from before labels: ggm rows of both ROI modes, no labels."""
    path.mkdir()
    with sqlite3.connect(path / "results.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
        db.execute(_OLD_RESULTS)
        for t, (version, q, nbytes) in enumerate([("ggm/roi-gt", "q1", 10),
                                                   ("ggm/roi-none", "q1", 12)]):
            db.execute("INSERT INTO results (codec, codec_version, quality, image_id, width, "
                       "height, bytes, bpp, psnr, created) VALUES ('ggm', ?, ?, 1, 4, 2, ?, ?, "
                       "30.0, ?)", (version, q, nbytes, nbytes, float(t)))
    return path


def test_old_store_without_label_column_still_reads(tmp_path):
    from bench.report.points import build_points, latest_versions

    rd = _old_store(tmp_path / "old")
    with ResultsStore(rd) as store:
        rows = store.results()
        assert [(r.codec, r.label, r.bytes) for r in rows] == [("ggm", "ggm", 10),
                                                                ("ggm", "ggm", 12)]
        assert store.done("ggm", "ggm/roi-none") == {("q1", 1)}  # resumption unchanged
        # rows from before labels count as the default label: the newest version wins
        assert latest_versions(store) == ({"ggm": "ggm/roi-none"},
                                          ["ggm: older version 'ggm/roi-gt' left out"])
        assert list(build_points(store, images="all").frame["codec"]) == ["ggm"]
        # a run of the roi-none version under its label claims those rows
        store.claim_label("ggm", "ggm/roi-none", "ggm@roi-none")
        store.put(ImageResult("ggm", "ggm/roi-none", "q2", 1, bytes=20, label="ggm@roi-none"))
        assert latest_versions(store)[0] == {"ggm": "ggm/roi-gt", "ggm@roi-none": "ggm/roi-none"}
        assert {(r.label, r.quality) for r in store.results(label="ggm@roi-none")} == {
            ("ggm@roi-none", "q1"), ("ggm@roi-none", "q2")}
        # a second label for the same version would mix two runs under one key: refused
        with pytest.raises(StoreError, match="must name every option"):
            store.claim_label("ggm", "ggm/roi-none", "ggm@roi-off")
    with sqlite3.connect(rd / "results.sqlite") as db:  # the column was added in place
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("1",)
        assert db.execute("SELECT COUNT(*) FROM results WHERE label IS NULL").fetchone() == (1,)


def test_commands_are_recorded_once_in_order_and_survive_reopening(tmp_path, monkeypatch):
    with ResultsStore(tmp_path) as store:
        assert store.commands() == []
        store.add_command("bench run --codec jpeg")
        store.add_command("bench run --codec webp")
        store.add_command("bench run --codec jpeg")  # again: kept once, where first seen
    with ResultsStore(tmp_path) as store:
        assert store.commands() == ["bench run --codec jpeg", "bench run --codec webp"]
        monkeypatch.setattr(ResultsStore, "MAX_COMMANDS", 2)
        store.add_command("bench run --codec av1")  # over the cap: the oldest goes
        assert store.commands() == ["bench run --codec webp", "bench run --codec av1"]


def test_command_machines_are_kept_per_command_once_each_and_follow_the_cap(tmp_path,
                                                                           monkeypatch):
    zen3 = {"cpu": {"model": "EPYC", "id": "AuthenticAMD 25/1"}, "packages": {"torch": "2.5"}}
    zen4 = {"cpu": {"model": "EPYC", "id": "AuthenticAMD 25/17"}, "packages": {"torch": "2.5"}}
    with ResultsStore(tmp_path) as store:
        store.add_command("bench run --codec jpeg")  # as an older bench did: no machine
        assert store.command_machines() == {}
        store.add_command("bench run --codec jpeg", machine=zen3)  # resumed: machine added
        store.add_command("bench run --codec webp", machine=zen3)
        store.add_command("bench run --codec jpeg", machine=zen4)  # resumed elsewhere
        store.add_command("bench run --codec jpeg", machine=zen3)  # again: kept once
    with ResultsStore(tmp_path) as store:
        assert store.commands() == ["bench run --codec jpeg", "bench run --codec webp"]
        assert store.command_machines() == {"bench run --codec jpeg": [zen3, zen4],
                                            "bench run --codec webp": [zen3]}
        assert store.command_records() == [("bench run --codec jpeg", [zen3, zen4]),
                                           ("bench run --codec webp", [zen3])]
        monkeypatch.setattr(ResultsStore, "MAX_COMMANDS", 2)
        store.add_command("bench run --codec av1", machine=zen4)  # the oldest command goes,
        assert store.command_machines() == {"bench run --codec webp": [zen3],  # its machines
                                            "bench run --codec av1": [zen4]}  # with it


def _record_commands(run_dir, tag: str, barrier, count: int) -> None:
    """One of the processes of the concurrent-commands test: ``count`` commands of its own."""
    with ResultsStore(run_dir) as store:
        barrier.wait()
        for i in range(count):
            store.add_command(f"bench run --codec {tag} --limit {i}", {"cpu": tag})


def test_commands_recorded_by_two_processes_at_once_are_all_kept(tmp_path):
    """Two ``bench run``s recording their command lines on one store at the same instant:
    none is lost. Reading the list and writing it back in two transactions lost a third to
    all of one process's 45 commands in three runs out of three."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_record_commands, args=(tmp_path, tag, barrier, 45))
             for tag in ("jpeg", "webp")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with ResultsStore(tmp_path) as store:
        assert len(store.commands()) == 90 and len(store.command_machines()) == 90
