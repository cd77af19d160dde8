"""Metrics identical to the reference tools: PQ (panopticapi), COCO mask AP (pycocotools), LVIS AP
(lvis), mIoU (detectron2's SemSegEvaluator), and for Cityscapes instance AP and mIoU
(cityscapesscripts). ``tasks`` says which of them a dataset format allows and scores predictions
against the readers' one target structure for all of them."""
