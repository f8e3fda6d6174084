"""Segmentation and classification metrics of the seed papers (numpy only)."""

from .segmentation import (binary_metrics, confusion, dice, e_measure, iou, mean_dice_thresholds,
                           s_measure)
from .classification import classification_metrics
from .evaluation import evaluate_segmentation

__all__ = ["binary_metrics", "classification_metrics", "evaluate_segmentation", "confusion", "dice", "e_measure", "iou",
           "mean_dice_thresholds", "s_measure"]
