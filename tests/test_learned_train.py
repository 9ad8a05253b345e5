"""The trainer: a few steps on tiny generated data, checkpoint, resume deterministically."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bench.learned.checkpoint import load_model
from bench.learned.data import ImageFolderSource, PackSource, make_batch, make_pack
from bench.learned.train import TrainConfig, Trainer
from tests.conftest import natural_image


@pytest.fixture()
def image_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i, (h, w) in enumerate([(40, 56), (48, 48), (30, 70)]):
        Image.fromarray(natural_image(h, w, seed=i)).save(d / f"{i}.png")
    return d


def _config(image_dir, out, **kw):
    base = dict(entropy="ggm", steps=3, batch_size=2, crop=32, lr=1e-3, seed=7,
                out=str(out), N=16, M=24, C=8, coco_root=str(image_dir / "no-coco"),
                extra_dirs=[str(image_dir)], progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_batches_are_deterministic(image_dir):
    source = ImageFolderSource(image_dir / "no-coco", [image_dir])
    a = make_batch(source, 5, 1, 3, 32)
    b = make_batch(source, 5, 1, 3, 32)
    c = make_batch(source, 6, 1, 3, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (3, 32, 32, 3) and a[1].shape == (3, 32, 32)


def test_refuses_the_evaluation_split(tmp_path):
    with pytest.raises(ValueError, match="val2017"):
        ImageFolderSource(tmp_path, [tmp_path / "val2017"])


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_train_checkpoint_resume(image_dir, tmp_path, entropy):
    full = Trainer(_config(image_dir, tmp_path / "full", entropy=entropy))
    losses = [r["loss"] for r in full.run()]
    assert len(losses) == 3 and all(np.isfinite(losses))

    first = Trainer(_config(image_dir, tmp_path / "split", entropy=entropy))
    part = [r["loss"] for r in first.run(stop_at_step=2)]
    assert (tmp_path / "split" / "last.pt").is_file()
    resumed = Trainer(_config(image_dir, tmp_path / "split", entropy=entropy), resume=True)
    assert resumed.step == 2
    rest = [r["loss"] for r in resumed.run()]
    assert part + rest == losses

    budget = resumed.budget()
    assert budget["steps"] == 3 and budget["crops_seen"] == 6 and len(budget["sessions"]) == 2
    blob = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert blob["step"] == 3
    log = (tmp_path / "split" / "train.log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 3

    card = resumed.export(tmp_path / "model.pt")
    assert card["budget"]["steps"] == 3 and card["architecture"]["parameters"] > 0
    assert (tmp_path / "model.pt").stat().st_size < 16e6
    model, loaded_card = load_model(tmp_path / "model.pt")
    assert model.entropy == entropy and loaded_card["budget"]["crops_seen"] == 6


def test_pack_round_trip_and_training(image_dir, tmp_path):
    source = ImageFolderSource(image_dir / "no-coco", [image_dir])
    info = make_pack(tmp_path / "pack.npz", source, crop=48, max_crops=4)
    assert info["crops"] == 4
    pack = PackSource(tmp_path / "pack.npz")
    assert len(pack) == 4 and pack.images.shape == (4, 48, 48, 3)
    images, qmaps, _ = make_batch(pack, 0, 0, 2, 32)
    assert images.shape == (2, 32, 32, 3)
    trainer = Trainer(_config(image_dir, tmp_path / "p", pack=str(tmp_path / "pack.npz"),
                              steps=1))
    assert len(trainer.run()) == 1


def test_time_budget_stops_cleanly(image_dir, tmp_path):
    trainer = Trainer(_config(image_dir, tmp_path / "t", steps=100, time_budget_min=0.0))
    records = trainer.run()
    assert len(records) == 1 and trainer.step == 1
    assert (tmp_path / "t" / "last.pt").is_file()
