"""The COCO data layer: selection, ROI masks, and the errors for broken data sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from bench.data.coco import CocoDataset, DataError, resolve_root
from tests.conftest import box_polygon, jpeg_bytes, natural_image, write_coco


def test_roi_is_union_of_instances_including_crowd(tiny_coco):
    ds = CocoDataset(tiny_coco)
    assert ds.ids == [1, 2, 3, 4]
    s1 = ds.load(1)
    assert s1.image.shape == (48, 64, 3) and s1.roi.shape == (48, 64)
    assert s1.roi[6:12, 6:22].all() and not s1.roi[30:, 40:].any()
    s2 = ds.load(2)
    # the crowd RLE's 10 pixels: column 0, rows 5..14
    assert s2.roi.sum() == 10 and s2.roi[5:15, 0].all()
    assert ds.load(3).roi.sum() == 0  # no objects: empty mask


def test_roi_matches_pycocotools_on_real_data(coco_root):
    ds = CocoDataset(coco_root, limit=5)
    for image_id in ds.ids:
        info = ds.info(image_id)
        expected = np.zeros((info["height"], info["width"]), bool)
        for ann in ds.annotations(image_id):
            rle = ds.coco.annToRLE(ann)
            expected |= mask_utils.decode(rle).astype(bool)
        assert (ds.roi_mask(image_id) == expected).all()


def test_crowd_annotations_exist_in_shared_data(coco_root):
    ds = CocoDataset(coco_root)
    crowd = [a for a in ds.coco.anns.values() if a["iscrowd"]]
    assert crowd, "the shared subset should exercise crowd RLE"
    assert ds.roi_mask(crowd[0]["image_id"]).any()


def test_limit_and_image_ids_are_stable(tiny_coco):
    assert CocoDataset(tiny_coco, limit=2).ids == [1, 2]
    assert CocoDataset(tiny_coco, image_ids=[4, 2, 2]).ids == [2, 4]
    assert CocoDataset(tiny_coco, image_ids=[4, 2, 1], limit=2).ids == [1, 2]
    with pytest.raises(DataError, match="99.*--image-ids"):
        CocoDataset(tiny_coco, image_ids=[99])


def test_missing_annotation_file(tmp_path):
    (tmp_path / "val2017").mkdir()
    with pytest.raises(DataError, match="instances_val2017.json not found.*bench data fetch"):
        CocoDataset(tmp_path)


def test_annotation_file_not_json(tmp_path):
    write_coco(tmp_path, [], [])
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{not json")
    with pytest.raises(DataError, match="instances_val2017.json is not valid JSON"):
        CocoDataset(tmp_path)


def test_annotation_file_not_coco(tmp_path):
    write_coco(tmp_path, [], [])
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(DataError, match="not a COCO instances file"):
        CocoDataset(tmp_path)


@pytest.mark.parametrize("name", ["../x.jpg", "/etc/passwd", "sub/../../x.jpg"])
def test_file_name_escaping_the_folder(tmp_path, name):
    write_coco(tmp_path, [{"id": 1, "file_name": name, "height": 4, "width": 4}], [])
    ds = CocoDataset(tmp_path)
    with pytest.raises(DataError, match="escapes the image folder"):
        ds.load(1)


def test_size_mismatch_is_reported(tmp_path):
    img = {"id": 1, "file_name": "a.jpg", "height": 10, "width": 10,
           "data": jpeg_bytes(natural_image(12, 10))}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1, "bbox": [0, 0, 2, 2],
           "segmentation": box_polygon(0, 0, 2, 2)}
    ds = CocoDataset(write_coco(tmp_path, [img], [ann]))
    with pytest.raises(ValueError, match="a.jpg is 10×12 but"):
        ds.load(1)


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("BENCH_DATA_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_root(None) == tmp_path / "cache" / "bench" / "coco"
