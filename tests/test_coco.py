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
    ds = CocoDataset(coco_root)
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


_IMG = {"id": 1, "file_name": "a.jpg", "height": 4, "width": 4}
_ANN = {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 4.0,
        "bbox": [0, 0, 2, 2], "segmentation": box_polygon(0, 0, 2, 2)}
_CATS = [{"id": 1, "name": "person"}]


def _doc(**parts):
    return {"images": [_IMG], "annotations": [_ANN], "categories": _CATS, **parts}


@pytest.mark.parametrize(("doc", "message"), [
    (42, r"top level is 42, not an object with images"),
    ([1, 2], r"top level is \[1, 2\], not an object"),
    ("images", r"top level is \"images\", not an object"),
    ({"images": [], "annotations": []}, r"missing categories"),
    (_doc(images=None), r"'images' is null, not a list of objects"),
    (_doc(annotations={"id": 1}), r"'annotations' is \{\"id\": 1\}, not a list"),
    (_doc(images=[_IMG, 42]), r"images\[1\] is 42, not an object with id, file_name, width"),
    (_doc(images=[{"id": 2, "file_name": "b.jpg", "height": 4}]),
     r"images\[0\] .*has no 'width'"),
    (_doc(images=[{**_IMG, "width": "640"}]),
     r"images\[0\] has 'width' = \"640\", expected a positive integer"),
    (_doc(images=[{**_IMG, "id": 1.5}]), r"images\[0\] has 'id' = 1.5, expected an integer"),
    (_doc(images=[_IMG, {**_IMG, "file_name": "b.jpg"}]),
     r"images\[1\] repeats id 1 of images\[0\]"),
    (_doc(annotations=[_ANN, None]), r"annotations\[1\] is null, not an object"),
    (_doc(annotations=[{**_ANN, "bbox": [0, 0, 2]}]),
     r"annotations\[0\] has 'bbox' = \[0, 0, 2\], expected a list of 4 numbers"),
    (_doc(annotations=[{**_ANN, "segmentation": "poly"}]),
     r"annotations\[0\] has 'segmentation' = \"poly\", expected a list of polygons"),
    (_doc(annotations=[{k: v for k, v in _ANN.items() if k != "image_id"}]),
     r"annotations\[0\] .*has no 'image_id'"),
    (_doc(categories=[{"id": 1}]), r"categories\[0\] .*has no 'name'"),
])
def test_malformed_annotation_file_names_the_entry(tmp_path, doc, message):
    write_coco(tmp_path, [], [])
    path = tmp_path / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message) as err:
        CocoDataset(tmp_path)
    assert str(path) in str(err.value) and "bench data fetch coco" in str(err.value)


def test_well_formed_minimal_file_loads(tmp_path):
    """Only what pycocotools and bench need: optional annotation fields may be absent."""
    write_coco(tmp_path, [_IMG], [{"id": 7, "image_id": 1, "category_id": 1}])
    assert CocoDataset(tmp_path).ids == [1]


@pytest.mark.parametrize("doc", [42, _doc(images=None), _doc(images=[_IMG, 7])])
def test_bench_run_exits_2_on_malformed_annotations(tmp_path, capsys, doc):
    from bench.cli import main

    write_coco(tmp_path, [], [])
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    code = main(["run", "--no-progress", "--codec", "jpeg", "--data-root", str(tmp_path),
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "bench run: error: annotation file" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["../x.jpg", "/etc/passwd", "sub/../../x.jpg"])
def test_file_name_escaping_the_folder(tmp_path, name):
    write_coco(tmp_path, [{"id": 1, "file_name": name, "height": 4, "width": 4}], [])
    ds = CocoDataset(tmp_path)
    with pytest.raises(DataError, match="escapes the image folder"):
        ds.load(1)


def test_rle_of_another_size_is_reported(tmp_path):
    img = {"id": 1, "file_name": "a.jpg", "height": 10, "width": 10,
           "data": jpeg_bytes(natural_image(10, 10))}
    ann = {"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 3, "bbox": [0, 0, 1, 3],
           "segmentation": {"size": [12, 10], "counts": [0, 3, 117]}}
    ds = CocoDataset(write_coco(tmp_path, [img], [ann]))
    with pytest.raises(DataError, match=r"annotation 5 of image 1 .* size \[12, 10\].*height 10"):
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
