"""Volumes, % of lung, zone involvement, HU statistics and severity of the findings.

The numbers come from a *tally*: voxel counts per (zone code, label) of every finding
voxel, the lung voxel count of every zone, and an HU histogram (1 HU bins, -1024..3071,
values outside clipped to the ends) plus an exact HU sum per label. A full
:func:`quantify` builds the tally slice by slice; :class:`IncrementalQuantifier` keeps it
and updates it from the edited box only.

Rules
-----
- Lung volume of a zone = lung-mask voxels of that zone, minus those labelled effusion
  (effusion lies in the pleural space), plus GGO / consolidation voxels outside the lung
  masks on that side (findings are lung tissue): see :mod:`.lungs`.
- "% of lung" of a finding = finding voxels / lung voxels (of the left lung, the right
  lung, both lungs, or one zone) x 100. For effusion, which is not part of the lung, it
  is the effusion volume *relative to* the lung volume of that side.
- "Total" = GGO + consolidation: the lung involvement that the severity scores rate.
- Volumes in mL = voxels x voxel volume, only when the scan's spacing is known
  (``geometry.spacing_known``); otherwise mL values are ``None`` and only voxel counts
  and percentages are reported.
- HU percentiles are nearest-rank percentiles of the 1 HU histogram (exact for integer
  HU); the mean is exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import DataError, GeometryMismatchError
from ..labels import CONSOLIDATION, DEFAULT_TABLE, EFFUSION, FINDING_KEYS, GGO
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry
from ..anatomy.lungs import ZONES, LungMasks
from .severity import SeverityScore, severity_scores

HU_MIN, HU_BINS = -1024, 4096
_NCODE = 13  # zone codes 0..12 (0: no lung masks)
_NLAB = 4


@dataclass
class FindingStats:
    """Numbers of one finding (or of the total involvement)."""

    key: str
    name: str
    voxels: int
    ml: Optional[float]
    percent_of_lungs: Optional[float]
    voxels_left: int = 0
    voxels_right: int = 0
    ml_left: Optional[float] = None
    ml_right: Optional[float] = None
    percent_left: Optional[float] = None
    percent_right: Optional[float] = None
    #: zone name -> {"voxels": int, "ml": float | None, "percent": float | None}
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    hu_mean: Optional[float] = None
    hu_p10: Optional[float] = None
    hu_p50: Optional[float] = None
    hu_p90: Optional[float] = None


@dataclass
class Quantification:
    """All numbers of one label map on one scan.

    Attributes
    ----------
    findings
        ``"ggo"``, ``"consolidation"``, ``"effusion"`` and ``"total"`` (GGO + consolidation).
    lungs
        ``"left"``, ``"right"``, ``"both"`` and each zone name -> ``{"voxels", "ml"}``.
    severity
        Zone-based severity scores (:mod:`.severity`); empty without lung masks, or when a lung zone holds
        no lung (a single slice, a thin stack, one lung not found: the scores rate six zones).
    spacing_known
        False when mL values are unknown (``None``).
    """

    findings: dict[str, FindingStats]
    lungs: dict[str, dict[str, Any]]
    severity: list[SeverityScore]
    spacing_known: bool
    voxel_volume_ml: float
    has_lungs: bool = True
    has_hu: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"spacing_known": self.spacing_known, "voxel_volume_ml": self.voxel_volume_ml,
                "has_lungs": self.has_lungs, "has_hu": self.has_hu,
                "findings": {k: asdict(v) for k, v in self.findings.items()},
                "lungs": {k: dict(v) for k, v in self.lungs.items()},
                "severity": [s.to_dict() for s in self.severity]}


class _Tally:
    """Counts per (zone code, label), lung voxels per zone, HU histogram and sum per label."""

    def __init__(self, lung_zone_voxels: np.ndarray, with_hu: bool) -> None:
        self.counts = np.zeros((_NCODE, _NLAB), dtype=np.int64)
        self.lung = lung_zone_voxels.astype(np.int64)
        self.with_hu = with_hu
        self.hist = np.zeros((_NLAB, HU_BINS), dtype=np.int64) if with_hu else None
        self.hu_sum = np.zeros(_NLAB, dtype=np.float64)

    def add(self, codes: np.ndarray, values: np.ndarray, hu: Optional[np.ndarray], sign: int = 1) -> None:
        """Add (sign=+1) or remove (-1) voxels given by their zone codes, labels and HU."""
        if values.size and int(values.max()) >= _NLAB:  # not a finding label: not counted
            keep = values < _NLAB
            codes, values = codes[keep], values[keep]
            hu = hu[keep] if hu is not None else None
        if values.size == 0:
            return
        idx = codes.astype(np.intp) * _NLAB + values
        self.counts += sign * np.bincount(idx, minlength=_NCODE * _NLAB).reshape(_NCODE, _NLAB)
        if self.with_hu and hu is not None:
            h = np.rint(hu).astype(np.intp) if hu.dtype.kind == "f" else hu.astype(np.intp)
            bins = np.clip(h - HU_MIN, 0, HU_BINS - 1)
            hidx = values.astype(np.intp) * HU_BINS + bins
            self.hist += sign * np.bincount(hidx, minlength=_NLAB * HU_BINS).reshape(_NLAB, HU_BINS)
            self.hu_sum += sign * np.bincount(values, weights=hu.astype(np.float64), minlength=_NLAB)


def _check(labels: np.ndarray, geometry: Geometry, lungs: Optional[LungMasks], hu: Optional[np.ndarray]) -> None:
    if labels.ndim != 3 or tuple(labels.shape) != tuple(geometry.shape):
        raise GeometryMismatchError(f"The label map {labels.shape} does not match the scan {geometry.shape}: "
                                    "load labels made for this scan.")
    if lungs is not None and lungs.shape != tuple(labels.shape):
        raise GeometryMismatchError(f"The lung masks {lungs.shape} do not match the label map {labels.shape}.")
    if hu is not None and tuple(hu.shape) != tuple(labels.shape):
        raise GeometryMismatchError(f"The scan {hu.shape} does not match the label map {labels.shape}.")
    if labels.size and int(labels.max(initial=0)) > 3:
        raise DataError(f"The label map holds values up to {int(labels.max())}; LungLens labels are 0..3 "
                        "(background, GGO, consolidation, effusion).")


def _lung_zone_voxels(lungs: Optional[LungMasks]) -> np.ndarray:
    if lungs is None:
        return np.zeros(_NCODE, dtype=np.int64)
    return np.asarray(lungs.zone_voxels, dtype=np.int64)


def _tally_box(tally: _Tally, labels: np.ndarray, zones: Optional[np.ndarray], hu: Optional[np.ndarray],
               sign: int = 1) -> None:
    """Add the finding voxels of a (sub)volume to the tally, slice by slice."""
    for k in np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1)):
        lk = labels[k]
        m = lk != 0
        vals = lk[m].astype(np.intp)
        codes = zones[k][m] if zones is not None else np.zeros(vals.size, dtype=np.intp)
        tally.add(codes, vals, hu[k][m] if hu is not None else None, sign)


def shown(value: Optional[float], present: int = 0, digits: int = 1) -> str:
    """``value`` as displayed (panels, report): rounded to ``digits``; "n/a" for ``None``; and "<0.1" (at one
    digit) for a finding that is there (``present`` voxels) but would round to zero, never "0.0"."""
    if value is None:
        return "n/a"
    if present and 0 <= value < 0.5 * 10 ** -digits:
        return f"<{10 ** -digits:g}"
    return f"{value:.{digits}f}"


def _pct(part: int, whole: int) -> Optional[float]:
    return 100.0 * part / whole if whole > 0 else None


def _percentile(hist: np.ndarray, p: float) -> Optional[float]:
    n = int(hist.sum())
    if n == 0:
        return None
    rank = max(int(np.ceil(p / 100.0 * n)), 1)
    return float(int(np.searchsorted(np.cumsum(hist), rank)) + HU_MIN)


def _result(tally: _Tally, geometry: Geometry, has_lungs: bool) -> Quantification:
    vox = geometry.voxel_volume_ml
    known = bool(geometry.spacing_known)

    def ml(n: int) -> Optional[float]:
        return n * vox if known else None

    c = tally.counts
    lung_zone = {}
    for i, zname in enumerate(ZONES):
        code = i + 1
        lung_zone[zname] = int(tally.lung[code] - c[code, EFFUSION] + c[code + 6, GGO] + c[code + 6, CONSOLIDATION])
    right = sum(lung_zone[z] for z in ZONES[:3])
    left = sum(lung_zone[z] for z in ZONES[3:])
    lungs: dict[str, dict[str, Any]] = {"left": {"voxels": left, "ml": ml(left)},
                                        "right": {"voxels": right, "ml": ml(right)},
                                        "both": {"voxels": left + right, "ml": ml(left + right)}}
    for z in ZONES:
        lungs[z] = {"voxels": lung_zone[z], "ml": ml(lung_zone[z])}

    def stats(key: str, name: str, values: Sequence[int]) -> FindingStats:
        per_code = c[:, list(values)].sum(axis=1)
        zone_vox = {z: int(per_code[i + 1] + per_code[i + 7]) for i, z in enumerate(ZONES)}
        n = int(per_code.sum())
        vr = sum(zone_vox[z] for z in ZONES[:3])
        vl = sum(zone_vox[z] for z in ZONES[3:])
        fs = FindingStats(key=key, name=name, voxels=n, ml=ml(n),
                          percent_of_lungs=_pct(n, left + right) if has_lungs else None,
                          voxels_left=vl, voxels_right=vr, ml_left=ml(vl), ml_right=ml(vr),
                          percent_left=_pct(vl, left) if has_lungs else None,
                          percent_right=_pct(vr, right) if has_lungs else None)
        if has_lungs:
            fs.zones = {z: {"voxels": zone_vox[z], "ml": ml(zone_vox[z]), "percent": _pct(zone_vox[z], lung_zone[z])}
                        for z in ZONES}
        if tally.with_hu and tally.hist is not None:
            hist = tally.hist[list(values)].sum(axis=0)
            if n > 0:
                fs.hu_mean = float(tally.hu_sum[list(values)].sum() / n)
                fs.hu_p10, fs.hu_p50, fs.hu_p90 = (_percentile(hist, p) for p in (10, 50, 90))
        return fs

    findings = {FINDING_KEYS[v]: stats(FINDING_KEYS[v], DEFAULT_TABLE[v].name, (v,))
                for v in (GGO, CONSOLIDATION, EFFUSION)}
    findings["total"] = stats("total", "Total involvement (GGO + consolidation)", (GGO, CONSOLIDATION))
    severity: list[SeverityScore] = []
    # severity rates six zones: without lung in one (a single slice, a lung not found) it is not given
    if has_lungs and all(lung_zone[z] > 0 for z in ZONES):
        zp = {z: findings["total"].zones[z]["percent"] or 0.0 for z in ZONES}
        severity = severity_scores(zp, ZONES)
    return Quantification(findings=findings, lungs=lungs, severity=severity, spacing_known=known,
                          voxel_volume_ml=vox, has_lungs=has_lungs, has_hu=tally.with_hu)


def quantify(labels: np.ndarray, geometry: Geometry, lungs: Optional[LungMasks],
             hu: Optional[np.ndarray] = None, progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelLike] = None) -> Quantification:
    """All numbers of ``labels`` on a scan (see the module docstring for the rules).

    Parameters
    ----------
    labels
        uint8 ``(z, y, x)`` finding labels 0..3.
    geometry
        The scan's geometry (spacing, ``spacing_known``).
    lungs
        Lung masks on the same grid; ``None`` gives volumes without percentages or scores.
    hu
        The scan's array when it holds Hounsfield units (``volume.is_hu``), else ``None``.
    """
    return IncrementalQuantifier(labels, geometry, lungs, hu, progress=progress, cancel=cancel,
                                 _copy=False).result()


def _box(region: Sequence[int] | tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    if len(region) == 3 and all(isinstance(s, slice) for s in region):
        sl = region
    elif len(region) == 6:
        z0, z1, y0, y1, x0, x1 = (int(v) for v in region)  # type: ignore[arg-type]
        sl = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    else:
        raise ValueError("region must be (z0, z1, y0, y1, x0, x1) or three slices")
    out = []
    for s, n in zip(sl, shape):
        a, b, _ = s.indices(n)  # type: ignore[union-attr]
        out.append(slice(a, max(a, b)))
    return tuple(out)  # type: ignore[return-value]


class IncrementalQuantifier:
    """Numbers that follow label edits by recounting only the edited box.

    Parameters
    ----------
    labels
        The live label map (the quantifier reads it in :meth:`update_region`; it keeps its
        own copy of the last counted state to know what changed).
    geometry, lungs, hu
        As in :func:`quantify`.

    Examples
    --------
    >>> q = IncrementalQuantifier(labels, geometry, lungs, hu)       # doctest: +SKIP
    >>> labels[10:12, 50:60, 50:60] = 1                              # doctest: +SKIP
    >>> q.update_region(10, 12, 50, 60, 50, 60).findings["ggo"].ml   # doctest: +SKIP
    """

    def __init__(self, labels: np.ndarray, geometry: Geometry, lungs: Optional[LungMasks],
                 hu: Optional[np.ndarray] = None, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelLike] = None, _copy: bool = True) -> None:
        _check(labels, geometry, lungs, hu)
        self.labels = labels
        self.geometry = geometry
        self.hu = hu
        self._shadow = labels.copy() if _copy else None
        self._cached: Optional[Quantification] = None
        self._recount(lungs, progress, cancel)

    def _recount(self, lungs: Optional[LungMasks], progress=None, cancel=None) -> None:
        report = as_progress(progress)
        self.lungs = lungs
        report(0.0, "Counting lung voxels")
        self._tally = _Tally(_lung_zone_voxels(lungs), with_hu=self.hu is not None)
        check_cancel(cancel)
        report(0.4, "Counting findings")
        _tally_box(self._tally, self.labels, lungs.zones if lungs is not None else None, self.hu)
        self._cached = None
        report(1.0, "Numbers ready")

    @classmethod
    def counted(cls, snapshot: np.ndarray, geometry: Geometry, lungs: Optional[LungMasks],
                hu: Optional[np.ndarray] = None, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelLike] = None) -> "IncrementalQuantifier":
        """Count a label snapshot that nobody else writes to (e.g. on a worker thread).

        The snapshot itself becomes the record of what was counted (no second copy); call
        :meth:`follow` with the live labels afterwards, then :meth:`update_region` for every
        box edited since the snapshot was taken.
        """
        q = cls(snapshot, geometry, lungs, hu, progress=progress, cancel=cancel, _copy=False)
        q._shadow = snapshot
        return q

    def follow(self, labels: np.ndarray) -> None:
        """Read ``labels`` (same grid) from now on; the counted state is kept as it is."""
        if tuple(labels.shape) != tuple(self.labels.shape):
            raise GeometryMismatchError(f"The label map {labels.shape} does not match {self.labels.shape}.")
        self.labels = labels

    def _apply(self, box: tuple[slice, slice, slice], old: np.ndarray, new: np.ndarray) -> None:
        changed = old != new
        if not changed.any():
            return
        zones = self.lungs.zones[box][changed] if self.lungs is not None else np.zeros(int(changed.sum()), np.intp)
        hu = self.hu[box][changed] if self.hu is not None else None
        o, n = old[changed].astype(np.intp), new[changed].astype(np.intp)
        mo, mn = o != 0, n != 0
        self._tally.add(zones[mo], o[mo], hu[mo] if hu is not None else None, -1)
        self._tally.add(zones[mn], n[mn], hu[mn] if hu is not None else None, +1)
        self._cached = None

    def update_region(self, *region: Any) -> Quantification:
        """Recount the box ``(z0, z1, y0, y1, x0, x1)`` (or three slices) of the live labels."""
        if len(region) == 1:
            region = tuple(region[0])
        box = _box(region, self.labels.shape)
        new = self.labels[box]
        if self._shadow is None:
            raise RuntimeError("this quantifier keeps no copy of the labels; use update(box, old, new)")
        old = self._shadow[box]
        self._apply(box, old, new)
        self._shadow[box] = new
        return self.result()

    def update(self, bbox: Any, old_values: np.ndarray, new_values: np.ndarray) -> Quantification:
        """Apply an edit given as its box and the box's values before and after."""
        box = _box(tuple(bbox), self.labels.shape)
        old = np.asarray(old_values)
        new = np.asarray(new_values)
        shape = tuple(s.stop - s.start for s in box)
        if old.shape != shape or new.shape != shape:
            raise ValueError(f"old/new values {old.shape}/{new.shape} do not match the box {shape}")
        self._apply(box, old, new)
        if self._shadow is not None:
            self._shadow[box] = new
        return self.result()

    def result(self) -> Quantification:
        """The current numbers (cached until the next update)."""
        if self._cached is None:
            self._cached = _result(self._tally, self.geometry, self.lungs is not None)
        return self._cached
