"""Mask2Former against traditional models (Mask R-CNN, DeepLabV3) on the same data and budget."""
