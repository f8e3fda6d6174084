"""The solid nodule rule sets aside a round, isolated, solid region and keeps pneumonia-shaped consolidation."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from engine.anatomy import LungMasks
from engine.inference.nodules import RULE, RULE_TEXT, set_aside_nodules
from engine.labels import CONSOLIDATION, GGO
from engine.types import Geometry, Volume

LUNG_HU, SOLID_HU, WALL_HU = -850.0, 40.0, 50.0
DICOM_99 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicom" / "chest_ct_99"


def _scene(spacing=(2.0, 0.8, 0.8), spacing_known=True):
    """A right lung of aerated tissue (x < 150 mm) in a chest wall, with five labelled findings:

    - a 16 mm solid sphere in aerated lung (a nodule),
    - a 16 mm solid sphere inside a 6 mm ring of ground glass (consolidation in GGO),
    - a 16 mm solid hemisphere flat on the chest wall (subpleural consolidation),
    - a 40 mm solid sphere (beyond a nodule's 3 cm),
    - a 30 x 30 mm patch 4 mm thick (a plate, not round).
    """
    size = (120.0, 160.0, 200.0)
    shape = tuple(int(round(m / s)) for m, s in zip(size, spacing))
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")

    def ball(c, r):
        return np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r

    lung = (x >= 10) & (x < 150) & (y >= 10) & (y < 150)
    nodule = ball((30, 40, 40), 8)
    in_ggo = ball((30, 110, 50), 8)
    halo = ball((30, 110, 50), 14) & ~in_ggo
    pleural = ball((30, 80, 150), 8) & lung                  # its flat side on the wall at x = 150
    mass = ball((80, 50, 90), 20)
    plate = (np.abs(z - 90) <= 2) & (np.abs(y - 120) <= 15) & (np.abs(x - 40) <= 15)
    solid = nodule | in_ggo | pleural | mass | plate
    img = np.where(lung, LUNG_HU, WALL_HU)
    img[halo] = -500.0
    img[solid] = SOLID_HU
    img = ndimage.gaussian_filter(img, [0.7 / s for s in spacing]) + np.random.default_rng(0).normal(0, 20, shape)
    labels = np.zeros(shape, np.uint8)
    labels[solid] = CONSOLIDATION
    labels[halo] = GGO
    geo = Geometry(shape=shape, spacing=spacing, spacing_known=spacing_known)
    vol = Volume(array=img.astype(np.int16), geometry=geo, is_hu=True)
    lungs = LungMasks.from_masks(np.zeros(shape, bool), lung, geo)
    parts = {"nodule": nodule, "in_ggo": in_ggo, "pleural": pleural, "mass": mass, "plate": plate}
    return vol, labels, lungs, parts


def test_only_the_round_isolated_solid_region_is_set_aside():
    vol, labels, lungs, parts = _scene()
    out, removed, nodules = set_aside_nodules(vol, labels, lungs)
    nodule = parts["nodule"]
    assert removed == {"consolidation": int(nodule.sum())}
    assert not out[nodule].any()
    for name in ("in_ggo", "pleural", "mass", "plate"):               # pneumonia shapes and a mass stay
        assert (out[parts[name]] == CONSOLIDATION).all(), name
    assert np.array_equal(out[labels == GGO], labels[labels == GGO])
    assert len(nodules) == 1
    n = nodules[0]
    zs = np.flatnonzero(nodule.any(axis=(1, 2)))
    assert n.slices == (int(zs[0]), int(zs[-1])) and n.voxels == int(nodule.sum())
    assert 15.0 <= n.diameter_mm <= 17.5 and 15.0 <= n.largest_extent_mm <= 18.0
    assert abs(n.volume_ml - 4 / 3 * np.pi * 8 ** 3 / 1000) < 0.15
    assert n.median_hu > 0
    assert n.notice == (f"Solid nodule / mass of {n.diameter_mm:.0f} mm at slices {zs[0] + 1}-{zs[-1] + 1}: not "
                        "assessed by this model (it reads pneumonia only) and not counted as consolidation; review it.")
    d = n.to_dict()
    assert d["slices"] == [int(zs[0]), int(zs[-1])] and d["notice"] == n.notice
    assert RULE == "solid_nodule" and "nodule" in RULE_TEXT[RULE]


def test_stacks_without_spacing_short_volumes_and_no_lungs_are_left_alone():
    vol, labels, lungs, _ = _scene(spacing_known=False)
    out, removed, nodules = set_aside_nodules(vol, labels, lungs)
    assert out is labels and removed == {"consolidation": 0} and nodules == []
    vol, labels, lungs, _ = _scene()
    assert set_aside_nodules(vol, labels, None)[2] == []
    short = Volume(vol.array[25:32], Geometry(shape=(7,) + vol.shape[1:], spacing=vol.geometry.spacing), is_hu=True)
    assert set_aside_nodules(short, labels[25:32], None)[2] == []


def test_a_speck_of_coarse_voxels_is_no_nodule():
    """Two slices of 2 x 2 voxels of 4.7 x 2.8 x 2.8 mm measure over 5 mm but show no shape: kept."""
    spacing = (4.6875, 2.8, 2.8)
    shape = (20, 40, 40)
    img = np.full(shape, LUNG_HU, np.int16)
    labels = np.zeros(shape, np.uint8)
    img[9:11, 20:22, 20:22] = SOLID_HU
    labels[9:11, 20:22, 20:22] = CONSOLIDATION
    geo = Geometry(shape=shape, spacing=spacing)
    lung = np.ones(shape, bool)
    out, removed, nodules = set_aside_nodules(Volume(img, geo, is_hu=True), labels,
                                              LungMasks.from_masks(np.zeros(shape, bool), lung, geo))
    assert nodules == [] and out is labels
    img[8:13, 16:26, 16:26] = SOLID_HU                                  # 28 x 28 mm across, 5 slices: a nodule
    labels[8:13, 16:26, 16:26] = CONSOLIDATION
    ball = np.zeros(shape, bool)
    ball[8:13, 16:26, 16:26] = True
    out, removed, nodules = set_aside_nodules(Volume(img, geo, is_hu=True), labels,
                                              LungMasks.from_masks(np.zeros(shape, bool), lung, geo))
    assert len(nodules) == 1 and removed == {"consolidation": int(ball.sum())}


def test_an_8bit_lung_window_volume_reads_the_same():
    vol, labels, lungs, parts = _scene()
    img = np.clip((vol.array.astype(np.float32) + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)
    eight = Volume(array=img, geometry=vol.geometry, is_hu=False)
    out, removed, nodules = set_aside_nodules(eight, labels, lungs)
    assert removed == {"consolidation": int(parts["nodule"].sum())} and len(nodules) == 1


@pytest.mark.skipif(not DICOM_99.is_dir(), reason="needs ../shared/data/dicom/chest_ct_99")
def test_the_clear_chests_nodule_is_a_notice_not_consolidation():
    """chest_ct_99 (a cancer cohort): the round solid nodule at slices 31-34 is set aside and named."""
    from engine.inference import Predictor
    from engine.inference.summary import findings_document, quantify_prediction
    from engine.io import load
    from engine.quantification.report import report_document

    v = load(DICOM_99)
    pred = Predictor(device="cpu", findings_model=False, covid_model=False, threads=2).predict(v)
    assert len(pred.nodules) == 1
    n = pred.nodules[0]
    assert n.slices == (31, 34) and 14.0 <= n.diameter_mm <= 20.0 and n.median_hu > -100
    assert pred.rules_removed[RULE]["consolidation"] == n.voxels > 2000
    assert not (pred.labels[31:35] == CONSOLIDATION)[:, int(n.centre[1]), int(n.centre[2])].any()
    assert n.notice in pred.notes
    q, notes = quantify_prediction(v, pred)
    doc = findings_document(pred, v, q, notes=notes)
    assert doc["nodules"] == [n.to_dict()] and n.notice in doc["notes"]
    assert doc["rules"][RULE]["removed"]["consolidation"]["voxels"] == n.voxels
    report = report_document(v, q, lungs=pred.lungs, findings_doc=doc, labels=pred.labels)
    assert n.notice in report["notes"]
