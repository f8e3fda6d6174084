"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.metrics import (binary_metrics, classification_metrics, confusion, dice, e_measure, iou,
                            mean_dice_thresholds, s_measure)
from engine.metrics.classification import auc
from engine.metrics.evaluation import evaluate_segmentation


@pytest.fixture
def square():
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True              # 16 px
    pred = np.zeros((8, 8), bool)
    pred[2:6, 3:7] = True            # 16 px, 12 overlap
    return pred, gt


def test_confusion_metrics(square):
    pred, gt = square
    assert confusion(pred, gt) == (12, 4, 4, 44)
    m = binary_metrics(pred, gt)
    assert m["dice"] == pytest.approx(24 / 32)
    assert m["iou"] == pytest.approx(12 / 20)
    assert m["sensitivity"] == pytest.approx(12 / 16)
    assert m["specificity"] == pytest.approx(44 / 48)
    assert m["precision"] == pytest.approx(12 / 16)
    assert m["f2"] == pytest.approx(5 * 0.75 * 0.75 / (4 * 0.75 + 0.75))
    assert m["gmean"] == pytest.approx(math.sqrt(0.75 * 44 / 48))
    assert m["mcc"] == pytest.approx((12 * 44 - 16) / math.sqrt(16 * 16 * 48 * 48))
    assert m["mae"] == pytest.approx(8 / 64)


def test_dice_iou_empty():
    z = np.zeros((4, 4), bool)
    assert dice(z, z) == 1.0 and iou(z, z) == 1.0
    one = z.copy()
    one[0, 0] = True
    assert dice(one, z) == 0.0


def test_mean_dice_thresholds(square):
    _, gt = square
    prob = np.zeros((8, 8))
    prob[2:6, 3:7] = 0.9
    # t = 0: everything positive -> 2*16/(64+16) = 0.4; 0 < t <= 0.9 (229 thresholds) -> 0.75; t > 0.9 -> 0
    assert mean_dice_thresholds(prob, gt) == pytest.approx((0.4 + 229 * 0.75) / 256)


def test_s_measure_perfect_and_inverse(square):
    _, gt = square
    assert s_measure(gt.astype(float), gt) == pytest.approx(1.0, abs=1e-6)
    assert s_measure(1.0 - gt, gt) < 0.1
    z = np.zeros((8, 8), bool)
    assert s_measure(np.full((8, 8), 0.25), z) == pytest.approx(0.75)  # empty gt: 1 - mean(pred)


def test_s_measure_object_term_by_hand():
    # gt all foreground -> S = mean(pred)
    gt = np.ones((4, 4), bool)
    assert s_measure(np.full((4, 4), 0.3), gt) == pytest.approx(0.3)


def test_e_measure_perfect_empty_and_by_hand(square):
    _, gt = square
    assert e_measure(gt.astype(float), gt) == pytest.approx(64 / 63)  # Fan et al. divide by (N - 1)
    z = np.zeros((8, 8))
    assert e_measure(z, np.zeros((8, 8), bool)) == pytest.approx(64 / 63)
    # a binary prediction equal to the inverse of gt: align = -1 everywhere -> E = 0
    assert e_measure(1.0 - gt, gt) == pytest.approx(0.0)


def test_classification_metrics_and_auc():
    prob = np.array([0.9, 0.8, 0.3, 0.6, 0.1])
    y = np.array([1, 1, 1, 0, 0])
    m = classification_metrics(prob, y)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["precision"] == pytest.approx(2 / 3)
    # pairs (pos, neg): (0.9>0.6,0.9>0.1,0.8>0.6,0.8>0.1,0.3<0.6,0.3>0.1) -> 5/6
    assert auc(prob, y) == pytest.approx(5 / 6)
    assert auc(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)


def test_evaluate_segmentation_layout(square):
    pred, gt = square
    lab = np.zeros((8, 8), np.uint8)
    lab[gt] = 1
    probs = np.zeros((4, 8, 8))
    probs[0] = 1.0
    probs[0][pred] = 0.0
    probs[1][pred] = 1.0
    res = evaluate_segmentation([(probs, lab)])
    assert set(res) == {"classes", "infection"}
    assert set(res["classes"]) == {"ggo", "consolidation", "effusion"}
    assert res["classes"]["ggo"]["dice"] == pytest.approx(0.75)
    assert res["classes"]["consolidation"] is None  # no image contains it
    assert res["infection"]["mean_dice_thresholds"] == pytest.approx((0.4 + 255 * 0.75) / 256)
    for key in ("dice", "iou", "sensitivity", "specificity", "precision", "f1", "f2", "gmean", "mcc", "mae",
                "s_measure", "e_measure"):
        assert key in res["infection"]
