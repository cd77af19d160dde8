"""Metrics identical to the reference tools: PQ (panopticapi), COCO mask AP (pycocotools), mIoU
(detectron2's SemSegEvaluator), and for Cityscapes instance AP and mIoU (cityscapesscripts)."""
