"""Instance segmentation scored by COCO mask AP (and box AP)."""

from bench.tasks.instances import CocoInstanceTask


class SegmentationTask(CocoInstanceTask):
    """Instance masks of the 80 COCO classes at original resolution, as RLE."""

    name = "segmentation"
    iou_types = ("segm", "bbox")
    default_model = "yolo11n-seg.pt"
    want_masks = True
    summary_columns = (("seg_ap", "mask AP", "segm", "AP"),
                       ("seg_ap50", "mask AP50", "segm", "AP50"))
