"""When the AI reading does not answer: inputs it cannot read, reported as "not assessed".

The models were trained on axial chest CT slices, windowed 8-bit images or Hounsfield
units. Outside that, a confident number would be invented. :func:`input_problems` checks
what can be seen before any model runs; the lung search of :mod:`engine.anatomy` decides
the last reason (no lung in the series). A reading with a reason carries no label, no
probability and no severity score: ``findings.json``, the report and the app say
"not assessed" and why.

Checks
------
- *Unknown intensity scale*: an image that is not in HU must hold 8-bit values
  (0..255). Values outside that range (a series without a Modality tag read as
  unscaled integers, 16-bit PNGs...) cannot be windowed as the training images were.
  HU data whose body holds no value between -1100 and -400 HU nor any above -100 HU
  (a wrong rescale) is also refused.
- *Tiny images*: fewer than :data:`MIN_PIXELS` pixels on a side (thumbnails, icons):
  the models would see a few pixels per lobe.
- *Non-axial slices*: the slice normal (the direction of the index ``k`` axis) must lie
  within :data:`MAX_TILT_DEG` of the patient's head-feet axis; sagittal and coronal
  reformats are refused.
"""

from __future__ import annotations

import math

import numpy as np

from ..types import Volume

MIN_PIXELS = 64
MAX_TILT_DEG = 30.0

NO_LUNG = ("No lung was found in this series (it may show the abdomen, the head or the neck): the AI reads "
           "chest CT only.")


def input_problems(volume: Volume) -> list[str]:
    """Reasons the AI cannot read ``volume`` (empty when it can)."""
    reasons: list[str] = []
    nz, ny, nx = volume.shape
    if min(ny, nx) < MIN_PIXELS:
        reasons.append(f"The images are {nx} x {ny} pixels: too small to read (at least {MIN_PIXELS} needed).")
    normal = volume.geometry.direction_matrix[:, 2]
    cos = abs(float(normal[2])) / max(float(np.linalg.norm(normal)), 1e-9)
    tilt = math.degrees(math.acos(min(1.0, cos)))
    if tilt > MAX_TILT_DEG:
        reasons.append(f"The slices are not axial (orientation {volume.geometry.orientation_code()}, "
                       f"{tilt:.0f} degrees from axial): the AI reads axial slices only; open the axial series.")
    arr = volume.array
    sample = arr[:: max(1, nz // 16)]
    lo, hi = float(sample.min()), float(sample.max())
    if not volume.is_hu:
        if lo < 0 or hi > 255:
            reasons.append(f"The intensity scale is unknown: values run from {lo:g} to {hi:g}, neither Hounsfield "
                           "units nor an 8-bit image (a series without a Modality tag?). Open the series with its "
                           "CT header, or export it as windowed 8-bit images.")
    else:
        body = sample[sample > -1500]
        if body.size and (not np.any((body > -1100) & (body < -400)) or not np.any(body > -100)):
            reasons.append(f"The values ({lo:g} to {hi:g}) do not look like Hounsfield units of a chest CT "
                           "(no air-filled lung and soft tissue range): check the series' rescale slope and "
                           "intercept.")
    return reasons
