"""Object detection scored by COCO box AP."""

from bench.tasks.instances import CocoInstanceTask


class DetectionTask(CocoInstanceTask):
    """Boxes of the 80 COCO classes, scored with pycocotools bbox AP."""

    name = "detection"
    iou_types = ("bbox",)
    default_model = "yolov8n.pt"
    want_masks = False
    summary_columns = (("det_ap", "det AP", "bbox", "AP"),
                       ("det_ap50", "det AP50", "bbox", "AP50"))
