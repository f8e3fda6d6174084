"""Know when not to answer: inputs the AI cannot read are 'not assessed', with no numbers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inference import Predictor
from engine.inference.assess import NO_LUNG, input_problems
from engine.inference.reference import intensity_model
from engine.inference.summary import findings_document, quantify_prediction
from engine.labels import GGO
from engine.phantom import chest_ct
from engine.types import Geometry, Volume


def _read(volume: Volume, size=(128, 128)):
    pred = Predictor(intensity_model(size), device="cpu", findings_model=False, covid_model=False).predict(volume)
    q, notes = quantify_prediction(volume, pred)
    return pred, findings_document(pred, volume, q, notes=notes)


def _assert_withheld(pred, doc, reason: str) -> None:
    assert not pred.assessed and any(reason in r for r in pred.not_assessed)
    assert pred.labels.sum() == 0 and pred.scan_probabilities == {}
    assert doc["assessment"] == {"assessed": False, "reasons": pred.not_assessed}
    assert all(f["probability"] is None for f in doc["findings"].values())
    assert doc["severity"] is None and doc["rsna_category"] is None and doc["slice_probabilities"] is None
    assert doc["quantification"] is None and doc["covid"] is None


def test_abdomen_like_volume_without_lung_is_not_assessed():
    # body of soft tissue with gas-filled bowel loops (GGO-like after windowing at their rims)
    nz, n = 24, 128
    yy, xx = np.mgrid[:n, :n]
    body = ((yy - 64) / 50.0) ** 2 + ((xx - 64) / 58.0) ** 2 < 1
    arr = np.full((nz, n, n), -1000, np.int16)
    arr[:, body] = 40
    for cy, cx in ((50, 40), (70, 80), (60, 60)):
        arr[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 36] = -1000
        arr[:, ((yy - cy) ** 2 + (xx - cx) ** 2 >= 36) & ((yy - cy) ** 2 + (xx - cx) ** 2 < 64)] = -500
    v = Volume(arr, Geometry((nz, n, n), spacing=(5.0, 2.8, 2.8)), is_hu=True)
    assert input_problems(v) == []
    pred, doc = _read(v)
    _assert_withheld(pred, doc, NO_LUNG)


def test_slice_without_lung_is_not_assessed():
    img = np.full((1, 256, 256), 200, np.uint8)          # 8-bit slice of soft tissue only
    img[0, :20] = 0
    pred, doc = _read(Volume(img, Geometry(img.shape, spacing_known=False), is_hu=False))
    _assert_withheld(pred, doc, "No lung was found")


def test_series_without_modality_read_as_raw_integers_is_not_assessed():
    # a CT series without a Modality tag: stored values (0..3000) taken as an 8-bit image
    ph = chest_ct(shape=(32, 128, 128), spacing=(8.0, 2.8, 2.8), seed=6)
    raw = (ph.volume.array.astype(np.int32) + 1024).astype(np.int16)
    v = Volume(raw, ph.volume.geometry, is_hu=False)
    pred, doc = _read(v)
    _assert_withheld(pred, doc, "intensity scale is unknown")
    # and HU whose rescale is wrong (everything shifted up by 2000)
    shifted = Volume((ph.volume.array.astype(np.int32) + 2000).astype(np.int16), ph.volume.geometry, is_hu=True)
    assert any("Hounsfield" in r for r in input_problems(shifted))


def test_tiny_and_non_axial_images_are_not_assessed():
    tiny = Volume(np.zeros((3, 32, 32), np.uint8), Geometry((3, 32, 32)), is_hu=False)
    assert any("too small" in r for r in input_problems(tiny))
    ph = chest_ct(shape=(32, 128, 128), spacing=(8.0, 2.8, 2.8), seed=6)
    sag = Geometry((32, 128, 128), spacing=(8.0, 2.8, 2.8),
                   direction=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)))   # slices along x: sagittal
    v = Volume(ph.volume.array, sag, is_hu=True)
    assert any("not axial" in r for r in input_problems(v))
    pred, doc = _read(v)
    _assert_withheld(pred, doc, "not axial")


def test_a_chest_is_assessed_and_its_findings_are_inside_the_lungs():
    ph = chest_ct(shape=(32, 128, 128), spacing=(8.0, 2.8, 2.8), seed=6)
    pred, doc = _read(ph.volume)
    assert pred.assessed and doc["assessment"]["assessed"]
    assert pred.lungs is not None and (pred.labels == GGO).any()
    assert pred.lungs.lung[pred.labels == GGO].all()
    assert doc["rsna_category"]["category"] in ("typical", "indeterminate", "atypical", "negative")
    assert doc["findings"]["ggo"]["probability"] is not None
