"""One image of a numbered stack opens the stack; SeriesInfo carries the study and series dates (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine import io
from engine.io.images import numbered_stack


def test_one_image_opens_its_numbered_stack(tmp_path: Path):
    for k in (1, 2, 10, 11):
        Image.fromarray(np.full((8, 10), k * 10, np.uint8)).save(tmp_path / f"ct_{k}.png")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "ct_7_mask.png")  # another pattern
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "ct_3.jpg")  # another extension
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "scout.png")
    assert [p.name for p in numbered_stack(tmp_path / "ct_2.png")] == ["ct_1.png", "ct_2.png", "ct_10.png",
                                                                       "ct_11.png"]
    assert numbered_stack(tmp_path / "scout.png") == [tmp_path / "scout.png"]
    vol = io.load(tmp_path / "ct_10.png")
    assert vol.shape == (4, 8, 10)
    assert sorted(int(v) for v in vol.array[:, 0, 0]) == [10, 20, 100, 110]
    assert io.load(tmp_path / "scout.png").shape == (1, 8, 10)


def test_series_info_has_the_dates(tmp_path: Path):
    import pydicom
    from dicom_factory import ct_series

    paths, _ = ct_series(tmp_path, n=3)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.StudyDate, ds.SeriesDate = "20200317", "20200318"
        ds.save_as(p)
    info = io.list_series(tmp_path)[0]
    assert (info.study_date, info.series_date) == ("20200317", "20200318")
    assert info.to_dict()["study_date"] == "20200317"
