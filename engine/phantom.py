"""A synthetic chest CT with known findings: the built-in demo scan and test fixture.

:func:`chest_ct` builds a CT volume in Hounsfield units together with its ground
truth: finding labels (1 GGO, 2 consolidation, 3 pleural effusion, see
:mod:`engine.labels`), the lung masks and the exact volumes of every region.

Anatomy (axial slices, canonical LPS grid: ``array[k]`` is an axial slice, row 0 is
anterior, low x index is the patient's right, k increases superior):

- air outside the body (-1000 HU); an elliptic body with a subcutaneous fat layer
  (-100 HU) around muscle/soft tissue (40 HU);
- a rib cage (cortical bone 900 HU around marrow 250 HU) whose ribs run obliquely,
  a sternum, and a spine (vertebral bodies and discs, spinal canal, spinous process)
  posteriorly;
- the heart (40 HU) anterior, left of centre, on the diaphragm; ascending aorta, arch
  and descending aorta (40 HU); mediastinal fat (-100 HU);
- two lungs (-850 HU parenchyma, from -870 anteriorly to -830 posteriorly: the
  dependent density of a supine patient) bounded by the diaphragm domes (the right one higher),
  the mediastinum and the heart; trachea, carina and main bronchi (air lumen, soft-tissue
  wall) outside the lung masks; inside each lung, branching vessel trees (40 HU tubes)
  and a bronchial tree (-1000 HU lumen, thin wall);
- findings: ground-glass blobs (-550 to -400 HU, denser towards their centre; vessels stay
  visible through them), consolidation blobs (about 30 HU, hiding vessels and airways),
  and a dependent (posterior, basal) pleural effusion with a meniscus (10 HU) in both
  lungs, larger on the right;
- white Gaussian noise (sigma 20 HU by default).

Effusion rule
-------------
Fluid lies in the pleural space, outside the lung. The phantom models it by *displacing*
the posterior basal part of each lung: those voxels get label 3 and 10 HU, and they are
**not** part of ``lung_mask`` / ``lung_left`` / ``lung_right``. GGO and consolidation are
lung tissue: their voxels are inside the lung masks. Trachea and main bronchi are outside
the lung masks; intrapulmonary vessels and airways are inside (the masks are "filled").

``expected_ml`` is computed from voxel counts of the returned masks times the voxel
volume, so it is exact for the returned arrays.

Anatomy is laid out in coordinates normalised to the field of view (in-plane unit = half
the field of view, z in [0, 1] over the scanned extent), so a small grid such as
``chest_ct(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8))`` shows the same anatomy at a
coarser resolution. The default 300x512x512 grid builds in a couple of seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .labels import CONSOLIDATION, EFFUSION, GGO
from .progress import CancelLike, ProgressCallback, as_progress, check_cancel
from .types import Geometry, Volume

# -- tissue classes (index into _HU) -------------------------------------------------
(AIR, FAT, SOFT, BONE, MARROW, LUNG, VESSEL, AWAY, FLUID, CONS, DISC, CSF, LIVER,
 GGO1, GGO2, GGO3, GGO4) = range(17)
_HU = np.zeros(256, dtype=np.int16)
_HU[[AIR, FAT, SOFT, BONE, MARROW, LUNG, VESSEL, AWAY, FLUID, CONS, DISC, CSF, LIVER,
     GGO1, GGO2, GGO3, GGO4]] = [-1000, -100, 40, 900, 250, -850, 40, -1000, 10, 30, 80, 15, 60,
                                 -550, -500, -450, -400]

def _parenchyma(hu: np.ndarray) -> np.ndarray:
    """Noise-free lung parenchyma (-850 HU +- the dependent gradient); no other tissue is near."""
    return (hu >= -880) & (hu <= -820)


# lung side codes in the side map
_RIGHT, _LEFT = 1, 2


@dataclass
class Phantom:
    """A synthetic chest CT and its ground truth.

    Attributes
    ----------
    volume
        int16 HU volume (``is_hu=True``, ``format="phantom"``), canonical LPS grid.
    labels
        uint8 (z, y, x): 0 background, 1 GGO, 2 consolidation, 3 effusion.
    lung_mask, lung_left, lung_right
        bool masks; ``lung_mask = lung_left | lung_right``. Effusion is excluded,
        GGO and consolidation are included (see the module docstring).
    expected_ml
        Exact volumes in mL: ``ggo``, ``consolidation``, ``effusion``, ``lung_left``,
        ``lung_right`` (and ``lungs``).
    seed
        The seed the phantom was built with.
    """

    volume: Volume
    labels: np.ndarray
    lung_mask: np.ndarray
    lung_left: np.ndarray
    lung_right: np.ndarray
    expected_ml: dict[str, float] = field(default_factory=dict)
    seed: int = 0


# -- small geometric helpers ----------------------------------------------------------------

def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Normalised squared elliptic radius (< 1 inside)."""
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


class _Grid:
    """Index <-> normalised / mm coordinates of the phantom grid."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
        self.shape = shape
        self.spacing = spacing
        nz, ny, nx = shape
        sz, sy, sx = spacing
        self.half_x = nx * sx / 2.0
        self.half_y = ny * sy / 2.0
        self.extent_z = nz * sz
        # normalised in-plane coordinates of pixel centres, in units of half the FOV
        self.X = ((np.arange(nx, dtype=np.float32) + 0.5) * sx - self.half_x) / self.half_x
        self.Y = ((np.arange(ny, dtype=np.float32) + 0.5) * sy - self.half_y) / self.half_y
        self.Z = (np.arange(nz, dtype=np.float32) + 0.5) / nz
        # mm per normalised unit, used to keep tubes and blobs round
        self.scale_mm = min(self.half_x, self.half_y)

    def mm(self, X: float, Y: float, Z: float) -> np.ndarray:
        """Normalised point -> (z, y, x) mm from the grid corner."""
        return np.array([Z * self.extent_z, Y * self.half_y + self.half_y, X * self.half_x + self.half_x])

    def index_box(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[slice, slice, slice] | None:
        sl = []
        for a in range(3):
            i0 = max(int(np.floor(lo_mm[a] / self.spacing[a] - 0.5)), 0)
            i1 = min(int(np.ceil(hi_mm[a] / self.spacing[a] - 0.5)) + 1, self.shape[a])
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
        return tuple(sl)  # type: ignore[return-value]

    def box_coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mm coordinates of voxel centres in ``box``, shaped for broadcasting."""
        out = []
        for a, s in enumerate(box):
            c = (np.arange(s.start, s.stop, dtype=np.float32) + 0.5) * self.spacing[a]
            shp = [1, 1, 1]
            shp[a] = c.size
            out.append(c.reshape(shp))
        return out[0], out[1], out[2]


def _segment_masks(grid: _Grid, p0: np.ndarray, p1: np.ndarray, radii: tuple[float, ...]):
    """Box and masks of voxels within each radius (mm) of the segment p0-p1 (mm, z y x)."""
    rmax = max(radii)
    lo = np.minimum(p0, p1) - rmax
    hi = np.maximum(p0, p1) + rmax
    box = grid.index_box(lo, hi)
    if box is None:
        return None, [None] * len(radii)
    cz, cy, cx = grid.box_coords(box)
    d = (p1 - p0).astype(np.float32)
    l2 = float(d @ d) or 1e-6
    pz, py, px = cz - p0[0], cy - p0[1], cx - p0[2]
    t = np.clip((pz * d[0] + py * d[1] + px * d[2]) / l2, 0.0, 1.0)
    dist2 = (pz - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (px - t * d[2]) ** 2
    return box, [dist2 <= r * r for r in radii]


def _tree(rng: np.random.Generator, root: np.ndarray, direction: np.ndarray, length: float,
          radius: float, depth: int, out: list) -> None:
    """Append (p0, p1, radius) segments of a random dichotomous tree (mm)."""
    if depth < 0 or radius < 0.35:
        return
    d = direction / np.linalg.norm(direction)
    end = root + d * length
    out.append((root, end, radius))
    for sign in (1.0, -1.0):
        perp = rng.normal(size=3)
        perp -= perp.dot(d) * d
        perp /= np.linalg.norm(perp) + 1e-9
        angle = np.deg2rad(rng.uniform(20, 40))
        child = d * np.cos(angle) + sign * perp * np.sin(angle)
        _tree(rng, end, child, length * rng.uniform(0.7, 0.85), radius * 0.78, depth - 1, out)


# -- the phantom -------------------------------------------------------------------------------

_LUNGS = {  # normalised in-plane centre / semi-axes; dome height offset
    _RIGHT: dict(cx=-0.43, cy=0.04, ax=0.34, ay=0.50, dome=0.03),
    _LEFT: dict(cx=0.43, cy=0.04, ax=0.33, ay=0.50, dome=0.0),
}


def _lung_scale(Z: float) -> float:
    """In-plane scale of the lung cross-section at height Z (apex taper)."""
    if Z <= 0.6:
        return 1.0
    u = (Z - 0.6) / 0.33
    return float(np.sqrt(max(1.0 - u * u, 0.0)))


_TRACHEA = (0.0, -0.02, 0.66)  # normalised x, y of the trachea; z of the carina


def _bbox2d(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _z_index(grid: _Grid, Z: np.ndarray) -> np.ndarray:
    """First slice index whose centre lies at or above normalised height Z."""
    return np.ceil(np.asarray(Z) * grid.shape[0] - 0.5).astype(np.int32)


def _paint_anatomy(grid: _Grid, hu: np.ndarray, side: np.ndarray, labels: np.ndarray,
                   effusion_size: dict[int, float], cancel: Optional[CancelLike], report) -> None:
    """Fill ``hu`` (noise-free) and ``side`` slice by slice, plus the effusion labels.

    Every z-dependent shape is precomputed as a per-pixel interval of slice indices, and
    each slice touches only the bounding boxes of what changes, so the loop stays cheap.
    Each slice is built as tissue classes, then turned into noise-free HU in ``hu``.
    """
    nz, ny, nx = grid.shape
    X2, Y2 = np.meshgrid(grid.X, grid.Y)  # (ny, nx), float32
    aspect = grid.half_x / grid.half_y

    # z-invariant template: air, body with fat layer, muscle
    base = np.full((ny, nx), AIR, dtype=np.uint8)
    base[_ellipse(X2, Y2, 0.0, 0.06, 0.92, 0.66) < 1] = FAT
    base[_ellipse(X2, Y2, 0.0, 0.06, 0.86, 0.60) < 1] = SOFT
    thorax = _ellipse(X2, Y2, 0.0, 0.05, 0.80, 0.52)
    inside_thorax = thorax < 1
    base_abdomen = base.copy()
    base_abdomen[inside_thorax & (X2 < 0.35)] = LIVER
    # rib ring: polar band just outside the thorax cavity (no ribs at sternum and spine)
    rho = np.sqrt(thorax)
    ring = (rho >= 1.0) & (rho < 1.085) & ~((np.abs(X2) < 0.18) & (Y2 < 0)) & ~((np.abs(X2) < 0.2) & (Y2 > 0))
    ring_idx = np.nonzero(ring)
    ring_t = ((rho[ring_idx] - 1.0) / 0.085).astype(np.float32)
    ring_q = (0.9 * (Y2[ring_idx] + 0.6)).astype(np.float32)  # ribs slope down anteriorly
    rib_inner_t = (ring_t > 0.25) & (ring_t < 0.75)

    # static mediastinal / spinal structures, combined per z-regime into overlays
    vert = _ellipse(X2, Y2, 0.0, 0.40, 0.12, 0.12)
    tr_x, tr_y, z_carina = _TRACHEA
    tr_r = 9.0 / grid.scale_mm
    trachea_d = _ellipse(X2, Y2, tr_x, tr_y, tr_r, tr_r * aspect)
    shapes = {
        "mediast": _ellipse(X2, Y2, 0.0, -0.02, 0.15, 0.52) < 1,
        "mfat": _ellipse(X2, Y2, 0.0, -0.30, 0.12, 0.16) < 1,
        "desc": _ellipse(X2, Y2, 0.13, 0.30, 0.065, 0.065 * aspect) < 1,
        "asc": _ellipse(X2, Y2, 0.03, -0.14, 0.075, 0.075 * aspect) < 1,
        "arch": (np.abs(X2 - 0.08) < 0.09) & (Y2 > -0.2) & (Y2 < 0.36),
        "twall": trachea_d < 1.5,
        "tlumen": trachea_d < 1,
        "vert": vert < 1,
        "vcortex": (vert >= 0.8) & (vert < 1),
        "canal": _ellipse(X2, Y2, 0.0, 0.58, 0.05, 0.05) < 1,
        "spinous": (np.abs(X2) < 0.025) & (Y2 > 0.60) & (Y2 < 0.67),
        "sternum": (np.abs(X2) < 0.07) & (Y2 > -0.52) & (Y2 < -0.45),
    }
    overlays: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def overlay(Z: float, disc: bool) -> tuple[np.ndarray, np.ndarray]:
        key = (Z < 0.93, Z > 0.5, Z < 0.86, 0.5 < Z < 0.86, 0.80 <= Z < 0.86, Z >= z_carina, disc)
        if key not in overlays:
            ov = np.full((ny, nx), 255, dtype=np.uint8)
            med, fat, desc, asc, arch, trach, dsc = key
            if med:
                ov[shapes["mediast"]] = SOFT
                if fat:
                    ov[shapes["mediast"] & shapes["mfat"]] = FAT
            for flag, name in ((desc, "desc"), (asc, "asc"), (arch, "arch")):
                if flag:
                    ov[shapes[name]] = SOFT
            if trach:
                ov[shapes["twall"]] = SOFT
                ov[shapes["tlumen"]] = AWAY
            ov[shapes["vert"]] = DISC if dsc else MARROW
            ov[shapes["vcortex"]] = DISC if dsc else BONE
            ov[shapes["canal"]] = CSF
            ov[shapes["spinous"]] = BONE
            ov[shapes["sternum"]] = BONE
            overlays[key] = (ov, ov != 255)
        return overlays[key]

    # lungs: per pixel, the slice interval [lo, hi) where the lung exists
    lungs = {}
    for s, p in _LUNGS.items():
        d = _ellipse(X2, Y2, p["cx"], p["cy"], p["ax"], p["ay"])
        inside = (d < 1) & inside_thorax
        z_lo = 0.12 + 0.22 * (1.0 - np.clip(d, 0, 1)) + p["dome"]  # diaphragm dome
        z_hi = 0.6 + 0.33 * np.sqrt(np.clip(1.0 - d, 0, 1))  # apex taper (see _lung_scale)
        lo = np.where(inside, _z_index(grid, z_lo), nz + 1)
        hi = np.where(inside, _z_index(grid, z_hi), -1)
        box = _bbox2d(inside)
        yrel = (Y2 - p["cy"]) / p["ay"]
        xrel2 = ((X2 - p["cx"]) / p["ax"]) ** 2
        gradient = np.rint(np.clip(yrel[box], -1, 1) * 20.0).astype(np.int16)  # -870 .. -830 HU
        lungs[s] = dict(box=box, lo=lo[box], hi=hi[box], yrel=yrel[box], xrel2=xrel2[box], gradient=gradient)
    # heart: ellipsoid on the diaphragm, anterior, left of centre
    heart_d = _ellipse(X2, Y2, 0.10, -0.14, 0.30, 0.28)
    heart_in = heart_d < 1
    hbox = _bbox2d(heart_in)
    half = 0.21 * np.sqrt(np.clip(1.0 - heart_d, 0, 1))
    h_lo = np.where(heart_in, _z_index(grid, 0.32 - half), nz + 1)[hbox]
    h_hi = np.where(heart_in, _z_index(grid, 0.32 + half), -1)[hbox]

    for k in range(nz):
        if k % 32 == 0:
            check_cancel(cancel)
            report(0.5 * k / nz, "Building phantom anatomy")
        Z = float(grid.Z[k])
        t = np.empty((ny, nx), dtype=np.uint8)
        sd = side[k]
        t[...] = base_abdomen if Z < 0.36 else base
        # ribs (oblique bands)
        s_long = np.mod(ring_q + Z * 11.0, 1.0) / 0.32
        rib = s_long < 1.0
        inner = rib & rib_inner_t & (s_long > 0.2) & (s_long < 0.8)
        t[ring_idx[0][rib], ring_idx[1][rib]] = BONE
        t[ring_idx[0][inner], ring_idx[1][inner]] = MARROW
        for s, L in lungs.items():
            m = (L["lo"] <= k) & (L["hi"] > k)
            sd[L["box"]][m] = s
            t[L["box"]][m] = LUNG
        ov, ovm = overlay(Z, bool(np.mod(Z * grid.extent_z, 28.0) < 6.0))
        np.copyto(t, ov, where=ovm)
        sd[ovm] = 0
        hm = (h_lo <= k) & (h_hi > k)
        t[hbox][hm] = SOFT
        sd[hbox][hm] = 0
        # dependent pleural effusion: posterior basal part of each lung, with a meniscus
        sc = _lung_scale(Z)
        for s, L in lungs.items():
            f = effusion_size[s] * np.clip((0.42 - Z) / 0.22, 0.0, 1.0)
            if f <= 0:
                continue
            b = L["box"]
            eff = (sd[b] == s) & (L["yrel"] > sc * (1.0 - f) - 0.35 * f * L["xrel2"])
            t[b][eff] = FLUID
            sd[b][eff] = 0
            labels[k][b][eff] = EFFUSION
        np.take(_HU, t, out=hu[k])
        for s, L in lungs.items():  # dependent density: parenchyma denser posteriorly
            b = L["box"]
            m = t[b] == LUNG
            hu[k][b][m] += L["gradient"][m]


def chest_ct(shape: tuple[int, int, int] = (300, 512, 512),
             spacing: Optional[tuple[float, float, float]] = None,
             seed: int = 0, lesions: bool = True, noise_hu: float = 20.0,
             progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelLike] = None) -> Phantom:
    """Build a synthetic chest CT with ground-truth findings.

    Parameters
    ----------
    shape
        ``(nz, ny, nx)`` voxels. At least ``(16, 32, 32)``.
    spacing
        ``(sz, sy, sx)`` in mm. ``None`` keeps the default field of view (300 mm tall,
        358.4 mm wide): ``(300 / nz, 358.4 / ny, 358.4 / nx)``, i.e. (1.0, 0.7, 0.7) for
        the default shape.
    seed
        Random seed; the same arguments give the same phantom, bit for bit.
    lesions
        When False the lungs are healthy and ``labels`` is all zero.
    noise_hu
        Standard deviation of the added Gaussian noise.
    progress, cancel
        See :mod:`engine.progress`.

    Returns
    -------
    Phantom
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or shape[0] < 16 or shape[1] < 32 or shape[2] < 32:
        raise ValueError(f"phantom shape must be at least (16, 32, 32), got {shape}")
    if spacing is None:
        spacing = (300.0 / shape[0], 358.4 / shape[1], 358.4 / shape[2])
    report = as_progress(progress)
    rng = np.random.default_rng(seed)
    grid = _Grid(shape, tuple(float(s) for s in spacing))  # type: ignore[arg-type]
    nz, ny, nx = shape
    hu = np.empty(shape, dtype=np.int16)
    side = np.zeros(shape, dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint8)

    effusion_size = {_RIGHT: 0.55, _LEFT: 0.35} if lesions else {_RIGHT: 0.0, _LEFT: 0.0}
    report(0.0, "Building phantom anatomy")
    _paint_anatomy(grid, hu, side, labels, effusion_size, cancel, report)

    check_cancel(cancel)
    report(0.5, "Growing vessels and airways")
    _paint_trees(grid, rng, hu, side)
    check_cancel(cancel)
    if lesions:
        report(0.7, "Placing findings")
        # own random stream, so that lesions do not move when the vessel trees change
        _paint_lesions(grid, np.random.default_rng([seed, 7]), hu, side, labels)

    report(0.8, "Adding noise")
    n = ny * nx
    pool = np.clip(np.rint(rng.standard_normal(max(4 * n, 1 << 20), dtype=np.float32) * noise_hu),
                   -32000, 32000).astype(np.int16)
    offsets = rng.integers(0, pool.size - n, size=nz)
    lung_left = np.empty(shape, dtype=bool)
    lung_right = np.empty(shape, dtype=bool)
    lung_mask = np.empty(shape, dtype=bool)
    counts = dict.fromkeys(("ggo", "consolidation", "effusion", "lung_left", "lung_right"), 0)
    for k in range(nz):  # slice by slice, so that every pass runs in cache
        hk = hu[k]
        hk += pool[offsets[k]:offsets[k] + n].reshape(ny, nx)
        np.maximum(hk, -1024, out=hk)
        np.equal(side[k], _LEFT, out=lung_left[k])
        np.equal(side[k], _RIGHT, out=lung_right[k])
        np.greater(side[k], 0, out=lung_mask[k])
        counts["lung_left"] += int(np.count_nonzero(lung_left[k]))
        counts["lung_right"] += int(np.count_nonzero(lung_right[k]))
        lk = labels[k]
        if lk.any():
            for key, value in (("ggo", GGO), ("consolidation", CONSOLIDATION), ("effusion", EFFUSION)):
                counts[key] += int(np.count_nonzero(lk == value))
    vox_ml = float(np.prod(grid.spacing)) / 1000.0
    expected = {key: c * vox_ml for key, c in counts.items()}
    expected["lungs"] = expected["lung_left"] + expected["lung_right"]

    sz, sy, sx = grid.spacing
    origin = (-(nx - 1) * sx / 2.0, -(ny - 1) * sy / 2.0, -(nz - 1) * sz)
    geometry = Geometry(shape=shape, spacing=grid.spacing, origin=origin)
    # same keys as the readers in engine.io; the canonical grid is also the "source" layout
    meta = {
        "modality": "CT",
        "patient_name": "PHANTOM^CHEST",
        "patient_id": f"LUNGLENS-PHANTOM-{seed}",
        "patient_sex": "O",
        "patient_age": "",
        "study_date": "20260101",
        "study_description": "LungLens synthetic chest CT",
        "series_description": f"Phantom seed {seed}" + ("" if lesions else " (healthy)"),
        "manufacturer": "LungLens",
        "source_orientation": {"axes": [0, 1, 2], "flips": [False, False, False],
                               "source_geometry": geometry.to_dict()},
    }
    volume = Volume(array=hu, geometry=geometry, is_hu=True, source=None, format="phantom", meta=meta)
    report(1.0, "Phantom ready")
    return Phantom(volume=volume, labels=labels, lung_mask=lung_mask, lung_left=lung_left,
                   lung_right=lung_right, expected_ml=expected, seed=seed)


def _paint_trees(grid: _Grid, rng: np.random.Generator, hu: np.ndarray, side: np.ndarray) -> None:
    """Main bronchi (outside the lungs), then vessel and bronchial trees inside them."""
    s = grid.scale_mm / 179.0  # mm scale relative to the default field of view
    carina = grid.mm(*_TRACHEA)
    hila = {_RIGHT: grid.mm(-0.24, 0.02, 0.56), _LEFT: grid.mm(0.26, 0.02, 0.54)}
    for sd, hilum in hila.items():
        box, (wall, lumen) = _segment_masks(grid, carina, hilum, (9.0 * s, 6.5 * s))
        if box is None:
            continue
        hb = hu[box]
        hb[wall & (hb != _HU[AWAY])] = _HU[SOFT]
        hb[lumen] = _HU[AWAY]
        side[box][wall] = 0
    segments: list = []
    for sd, hilum in hila.items():
        lateral = 1.0 if sd == _LEFT else -1.0
        dirs = [(0.0, 0.0, lateral), (0.8, 0.0, 0.6 * lateral), (-0.8, 0.0, 0.6 * lateral),
                (0.0, -0.8, 0.6 * lateral), (0.2, 0.8, 0.6 * lateral), (-0.6, 0.6, 0.5 * lateral)]
        for d in dirs:
            d = np.array(d) + rng.normal(scale=0.15, size=3)
            _tree(rng, hilum, d, 30.0 * s, 4.5 * s, 5, segments)
        # peripheral vessels: short thin tubes pointing away from the hilum
        for _ in range(170):
            c = _random_lung_point(grid, rng, side, sd, 0.15, 0.9, peripheral=False, tries=5)
            if c is None:
                continue
            d = c - hilum
            d = d / (np.linalg.norm(d) + 1e-9) + rng.normal(scale=0.3, size=3)
            d = d / np.linalg.norm(d) * rng.uniform(8.0, 16.0) * s
            segments.append((c - d / 2, c + d / 2, rng.uniform(0.9, 1.8) * s))
    vessel_segments = segments
    airway_segments: list = []
    for sd, hilum in hila.items():
        lateral = 1.0 if sd == _LEFT else -1.0
        for d in [(0.8, 0.1, 0.5 * lateral), (-0.8, 0.2, 0.5 * lateral), (0.0, -0.6, 0.7 * lateral)]:
            d = np.array(d) + rng.normal(scale=0.1, size=3)
            _tree(rng, hilum, d, 28.0 * s, 4.0 * s, 3, airway_segments)
    for p0, p1, r in vessel_segments:
        box, (m,) = _segment_masks(grid, p0, p1, (r,))
        if box is None:
            continue
        hb = hu[box]
        hb[m & (side[box] > 0)] = _HU[VESSEL]
    for p0, p1, r in airway_segments:
        box, (wall, lumen) = _segment_masks(grid, p0, p1, (r * 1.35, r))
        if box is None:
            continue
        hb = hu[box]
        inside = side[box] > 0
        hb[wall & inside & _parenchyma(hb)] = _HU[SOFT]
        hb[lumen & inside] = _HU[AWAY]


def _random_lung_point(grid: _Grid, rng: np.random.Generator, side: np.ndarray, which: int,
                       zlo: float, zhi: float, peripheral: bool, tries: int = 200) -> Optional[np.ndarray]:
    """A random point (mm) inside lung ``which`` (rejection sampling on the side map)."""
    p = _LUNGS[which]
    for _ in range(tries):
        Z = rng.uniform(zlo, zhi)
        ang = rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(0.55, 0.9) if peripheral else np.sqrt(rng.uniform(0.0, 1.0))
        X = p["cx"] + p["ax"] * rad * np.cos(ang) * _lung_scale(Z)
        Y = p["cy"] + p["ay"] * rad * np.sin(ang) * _lung_scale(Z)
        c = grid.mm(X, Y, Z)
        idx = tuple(int(np.clip(c[a] / grid.spacing[a] - 0.5, 0, grid.shape[a] - 1)) for a in range(3))
        if side[idx] == which:
            return c
    return None


def _blob(grid: _Grid, rng: np.random.Generator, center: np.ndarray, radius: float):
    """Box and normalised radius field (< 1 inside) of a lumpy blob: union of 3 ellipsoids."""
    parts = [(center, np.array([radius, radius, radius]) * rng.uniform(0.7, 1.1, size=3))]
    for _ in range(2):
        off = rng.normal(scale=0.45 * radius, size=3)
        parts.append((center + off, np.array([radius] * 3) * rng.uniform(0.45, 0.8, size=3)))
    lo = np.min([c - a for c, a in parts], axis=0)
    hi = np.max([c + a for c, a in parts], axis=0)
    box = grid.index_box(lo, hi)
    if box is None:
        return None, None
    cz, cy, cx = grid.box_coords(box)
    field = None
    for c, a in parts:
        q = ((cz - c[0]) / a[0]) ** 2 + ((cy - c[1]) / a[1]) ** 2 + ((cx - c[2]) / a[2]) ** 2
        field = q if field is None else np.minimum(field, q)
    return box, field


def _paint_lesions(grid: _Grid, rng: np.random.Generator, hu: np.ndarray, side: np.ndarray,
                   labels: np.ndarray) -> None:
    """GGO (peripheral, posterior-basal preference) and consolidation blobs inside the lungs."""
    s = grid.scale_mm / 179.0
    plan = [(GGO, _RIGHT, 0.30, 0.55, 26.0), (GGO, _LEFT, 0.35, 0.6, 24.0), (GGO, _RIGHT, 0.55, 0.8, 18.0),
            (GGO, _LEFT, 0.5, 0.75, 20.0), (GGO, _LEFT, 0.3, 0.45, 16.0),
            (CONSOLIDATION, _RIGHT, 0.4, 0.6, 16.0), (CONSOLIDATION, _LEFT, 0.4, 0.55, 14.0),
            (CONSOLIDATION, _RIGHT, 0.6, 0.75, 11.0)]
    ggo_hu = _HU[[GGO4, GGO3, GGO2, GGO1]]
    for value, which, zlo, zhi, radius in plan:
        c = _random_lung_point(grid, rng, side, which, zlo, zhi, peripheral=True)
        if c is None:
            continue
        box, q = _blob(grid, rng, c, radius * s * rng.uniform(0.85, 1.15))
        if box is None:
            continue
        inside = (q < 1) & (side[box] > 0)
        hb, lb = hu[box], labels[box]
        if value == GGO:
            lb[inside & (lb == 0)] = GGO
            shell = np.minimum((np.sqrt(q) * 4).astype(np.int64), 3)
            parench = inside & _parenchyma(hb)
            hb[parench] = ggo_hu[shell[parench]]
        else:
            lb[inside] = CONSOLIDATION
            hb[inside] = _HU[CONS]
