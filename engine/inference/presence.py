"""Presence of each finding per slice and per scan, from the segmentation's own evidence.

The unit of evidence is a *region*: a 2D connected component of one finding on one
slice of the label map *after* the anatomy rules of :mod:`.gate`. One logistic model per
finding gives each region the probability ``q`` that it is that finding:

Features of a region
    ``log_fraction``: log10 of its share of the slice's lung (region pixels / lung pixels,
    floored at 1e-4); ``mean_confidence`` and ``max_confidence``: the mean and the maximum
    model probability of the finding over its pixels.
Regions kept (:func:`read_evidence`)
    A region with ``q <= 0.5`` is removed from the label map (counted as the rule
    ``low_evidence``).
Slice probability
    ``p = 1 - prod(1 - q)`` over the slice's kept regions of that finding; a slice with
    none gets ``p_empty`` (the rate of the finding on fitting slices where no region was
    kept: what the segmentation misses), held below 0.5.

So bar and overlay agree by construction: a slice's probability is above 0.5 exactly when
it shows a region of that finding.

Whole scan
    The finding's 3D regions (kept pixels, 3D-connected) are the candidate lesions; each is
    real with probability ``q3`` = the highest slice probability along it. The scan holds
    the finding when at least one region is real or a finding was missed; the regions of one
    scan are not independent (a scan unlike the training data gives many false regions at
    once), so the estimate is the lower (Frechet) bound of that union,
    ``P = max(p_empty, max q3)``: at least as likely as its most convincing region. Noisy-or
    (independence) was rejected: tens of small false regions drive it to 1 on a clear chest.

The fitted coefficients live in ``resources/models/<model>.presence.json`` with the
sha256 of the weights they were fitted to (``python -m engine calibrate`` writes it);
without a file whose sha256 matches the model card's, :data:`UNCALIBRATED` is used and
the prediction says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import ndimage

from ..anatomy.boxes import value_box, z_slabs
from ..labels import FINDING_KEYS, FINDINGS

FEATURES: tuple[str, ...] = ("log_fraction", "mean_confidence", "max_confidence")
P_EMPTY_MAX = 0.45
THRESHOLD = 0.5


@dataclass
class FindingModel:
    """Logistic presence model of one finding."""

    bias: float
    weights: list[float]
    mean: list[float]
    scale: list[float]
    p_empty: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probability ``q`` of each region from its ``(n, F)`` features."""
        x = (np.asarray(features, np.float64).reshape(-1, len(FEATURES)) - np.asarray(self.mean)) / np.asarray(self.scale)
        z = self.bias + x @ np.asarray(self.weights)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass
class PresenceModel:
    """Per-finding :class:`FindingModel` s plus where they came from."""

    findings: dict[str, FindingModel]
    calibrated: bool = True
    model_name: Optional[str] = None
    model_sha256: Optional[str] = None
    fitted_on: str = ""
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "model_name": self.model_name, "model_sha256": self.model_sha256,
                "calibrated": self.calibrated, "fitted_on": self.fitted_on, "metrics": self.metrics,
                "findings": {k: asdict(v) for k, v in self.findings.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "PresenceModel":
        return cls(findings={k: FindingModel(**v) for k, v in d["findings"].items()},
                   calibrated=bool(d.get("calibrated", True)), model_name=d.get("model_name"),
                   model_sha256=d.get("model_sha256"), fitted_on=d.get("fitted_on", ""),
                   metrics=d.get("metrics", {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "PresenceModel":
        return cls.from_dict(json.loads(Path(path).read_text()))


#: keeps every region (q = 1) and reports ``p_empty`` 0: what ``engine calibrate`` runs with
KEEP_ALL = PresenceModel(
    findings={FINDING_KEYS[lab]: FindingModel(bias=40.0, weights=[0.0, 0.0, 0.0], mean=[0.0, 0.0, 0.0],
                                              scale=[1.0, 1.0, 1.0], p_empty=0.0) for lab in FINDINGS},
    calibrated=False, fitted_on="keeps every region (for fitting)")

#: used when no fitted file matches the segmentation model: mean confidence decides, and
#: the prediction notes that the probabilities are not calibrated
UNCALIBRATED = PresenceModel(
    findings={FINDING_KEYS[lab]: FindingModel(bias=0.0, weights=[0.5, 1.5, 0.0], mean=[-2.0, 0.6, 0.9],
                                              scale=[1.0, 0.1, 0.1], p_empty=0.05) for lab in FINDINGS},
    calibrated=False, fitted_on="not fitted: default coefficients")


def presence_path(model_name: str, models_dir: Optional[Path] = None) -> Path:
    """``resources/models/<model>.presence.json`` (beside the model's card)."""
    from ..models.registry import MODELS_DIR
    return Path(models_dir or MODELS_DIR) / f"{model_name}.presence.json"


def load_for(model_name: str, weights_sha256: str = "",
             models_dir: Optional[Path] = None) -> tuple[PresenceModel, Optional[str]]:
    """The fitted presence model of a segmentation model, or :data:`UNCALIBRATED` and why not.

    The file must record the sha256 of the weights it was fitted to; other weights
    (a retrained model) fall back to :data:`UNCALIBRATED` until ``python -m engine
    calibrate`` is run again.
    """
    path = presence_path(model_name, models_dir)
    if not path.is_file():
        return UNCALIBRATED, (f"No calibration for '{model_name}' ({path.name} missing): finding probabilities "
                              "are not calibrated; run 'python -m engine calibrate'.")
    model = PresenceModel.load(path)
    if not weights_sha256 or model.model_sha256 != weights_sha256:
        return UNCALIBRATED, (f"{path.name} was fitted to other weights than '{model_name}': finding "
                              "probabilities are not calibrated; run 'python -m engine calibrate' again.")
    return model, None


# -- evidence ---------------------------------------------------------------------------------

_PLANE = np.zeros((3, 3, 3), dtype=bool)
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def label_regions(labels: np.ndarray, lab: int) -> tuple[np.ndarray, int]:
    """2D connected components (per slice) of finding ``lab``: ``(ids (z, y, x) int32, count)``."""
    ids, n = ndimage.label(labels == lab, structure=_PLANE)
    return ids.astype(np.int32, copy=False), int(n)


@dataclass
class Regions:
    """The regions of one finding: ids map, per-region slice index and features."""

    ids: Optional[np.ndarray]  #: int32 ids inside ``box``, 0 none, i region i (dropped once scored)
    z: np.ndarray            #: (n,) slice of each region (index i - 1)
    features: np.ndarray     #: (n, F)
    #: where ``ids`` lies in the scan: the finding's bounding box (the whole scan when empty)
    box: tuple[slice, ...] = (slice(None),)


def region_features(labels: np.ndarray, lab: int, confidence: Optional[np.ndarray],
                    lung: Optional[np.ndarray]) -> Regions:
    """Regions of finding ``lab`` with their :data:`FEATURES`.

    ``confidence`` is the uint8 model probability (``/255``) of each pixel's label
    (``None``: 1 everywhere); ``lung`` the bool lung mask, or its pixels per slice ``(z,)``
    (``None``: the whole slice).
    """
    box = value_box(labels, (lab,))
    if box is None:
        return Regions(np.zeros(labels.shape, dtype=np.int32), np.zeros(0, dtype=np.int64),
                       np.zeros((0, len(FEATURES))))
    # the same regions in the same order as label_regions over the whole scan (raster order
    # survives a crop), at the cost of the finding's box instead of the scan
    ids, n = label_regions(labels[box], lab)
    flat = ids.ravel()
    sel = flat > 0
    rid = flat[sel]
    size = np.bincount(rid, minlength=n + 1)[1:].astype(np.float64)
    if confidence is None:
        mean = np.ones(n)
        mx = np.ones(n)
    else:
        conf = confidence[box].ravel()[sel].astype(np.float64) / 255.0
        mean = np.bincount(rid, weights=conf, minlength=n + 1)[1:] / np.maximum(size, 1)
        mx = np.zeros(n + 1)
        np.maximum.at(mx, rid, conf)
        mx = mx[1:]
    objs = ndimage.find_objects(ids)
    z = np.array([o[0].start for o in objs], dtype=np.int64) + box[0].start
    nz = labels.shape[0]
    if lung is None:
        lung_px = np.full(nz, labels[0].size).astype(np.float64)
    else:
        lung_px = (lung.reshape(nz, -1).sum(axis=1) if lung.ndim == 3 else lung).astype(np.float64)
    frac = size / np.maximum(lung_px[z] + size, 1.0)
    feats = np.stack([np.log10(np.maximum(frac, 1e-4)), mean, mx], axis=1)
    return Regions(ids, z, feats, box)


def read_evidence(labels: np.ndarray, confidence: Optional[np.ndarray], lung: Optional[np.ndarray],
                  model: "PresenceModel",
                  in_place: bool = False) -> tuple[np.ndarray, np.ndarray, dict[str, int], dict[str, Regions]]:
    """Score every region, remove those at ``q <= 0.5``, and give the slice probabilities.

    ``lung``: the lung mask or its pixels per slice (:func:`region_features`). Returns
    ``(labels (a new array; ``labels`` itself when ``in_place``), slice_p (z, 3), removed voxels
    per finding, regions per finding key)`` (see the module docstring). In place, the result is
    the same: removing one finding's regions never changes another finding's.
    """
    out = labels if in_place else labels.copy()
    nz = labels.shape[0]
    slice_p = np.zeros((nz, len(FINDINGS)), dtype=np.float64)
    removed: dict[str, int] = {}
    regions: dict[str, Regions] = {}
    for c, lab in enumerate(FINDINGS):
        key = FINDING_KEYS[lab]
        fm = model.findings[key]
        reg = region_features(labels, lab, confidence, lung)
        regions[key] = reg
        q = fm.predict(reg.features) if len(reg.z) else np.zeros(0)
        low = q <= THRESHOLD
        if low.any():
            drop = np.r_[False, low][reg.ids]
            removed[key] = int(drop.sum())
            out[reg.box][drop] = 0  # a view of ``out``: set in place
        reg.ids = None  # a full-size int32 volume per finding: not kept
        keep = np.ones(nz)
        kept = ~low
        np.multiply.at(keep, reg.z[kept], 1.0 - q[kept])
        has = np.zeros(nz, dtype=bool)
        has[reg.z[kept]] = True
        slice_p[:, c] = np.where(has, 1.0 - keep, min(fm.p_empty, P_EMPTY_MAX))
    return out, slice_p, removed, regions


def scan_probabilities(labels: np.ndarray, slice_p: np.ndarray, model: "PresenceModel") -> dict[str, float]:
    """Whole-scan probability per finding (module docstring): ``max(p_empty, max over 3D regions of q3)``.

    A 3D region's q3 is its highest slice probability, so the maximum over the regions is the
    maximum over the slices that hold the finding at all: no labelling is needed.
    """
    out: dict[str, float] = {}
    for c, lab in enumerate(FINDINGS):
        key = FINDING_KEYS[lab]
        best = min(model.findings[key].p_empty, P_EMPTY_MAX)
        present = np.flatnonzero(np.concatenate([(labels[k] == lab).any(axis=(1, 2))  # slab by slab
                                                 for k in z_slabs(labels.shape)] or [np.zeros(0, bool)]))
        if present.size:
            best = max(best, float(slice_p[present, c].max()))
        out[key] = float(best)
    return out


# -- fitting ----------------------------------------------------------------------------------

def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> tuple[float, np.ndarray]:
    """L2-penalised logistic regression by Newton's method (intercept not penalised)."""
    n, d = x.shape
    xa = np.hstack([np.ones((n, 1)), x])
    w = np.zeros(d + 1)
    pen = np.full(d + 1, l2)
    pen[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ w, -40, 40)))
        g = xa.T @ (p - y) + pen * w
        h = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(pen + 1e-9)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), w[1:]


def fit_finding(features: np.ndarray, truth: np.ndarray, region_slice: np.ndarray, slice_truth: np.ndarray,
                l2: float = 1.0) -> FindingModel:
    """Fit one finding's model.

    Parameters
    ----------
    features, truth
        ``(n, F)`` region features and ``(n,)`` 0/1: the region is that finding.
    region_slice
        ``(n,)`` index (into ``slice_truth``) of the slice each region lies on.
    slice_truth
        ``(m,)`` 0/1: the slice holds that finding (ground truth); every fitting slice,
        with or without regions.
    """
    x = np.asarray(features, np.float64).reshape(-1, len(FEATURES))
    y = np.asarray(truth, np.float64)
    slice_truth = np.asarray(slice_truth, np.float64)
    if x.shape[0] == 0:
        model = FindingModel(-10.0, [0.0] * len(FEATURES), [0.0] * len(FEATURES), [1.0] * len(FEATURES), 0.0)
    else:
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-6] = 1.0
        if y.min() == y.max():  # one class only: a constant
            rate = (y.sum() + 0.5) / (y.size + 1.0)
            model = FindingModel(float(np.log(rate / (1 - rate))), [0.0] * len(FEATURES), mean.tolist(),
                                 scale.tolist(), 0.0)
        else:
            b, w = _logistic((x - mean) / scale, y, l2=l2)
            model = FindingModel(b, w.tolist(), mean.tolist(), scale.tolist(), 0.0)
    kept = model.predict(x) > THRESHOLD if x.shape[0] else np.zeros(0, bool)
    shown = np.zeros(slice_truth.size, dtype=bool)
    shown[np.asarray(region_slice, np.int64)[kept]] = True
    empty = slice_truth[~shown]
    model.p_empty = float((empty.sum() + 0.5) / (empty.size + 1.0))  # Jeffreys prior: never exactly 0
    return model


def fit_presence(data: dict[str, dict[str, np.ndarray]], l2: float = 1.0, **info) -> PresenceModel:
    """Fit all findings; ``data[key]`` holds ``features``, ``truth``, ``region_slice``, ``slice_truth``."""
    models = {key: fit_finding(d["features"], d["truth"], d["region_slice"], d["slice_truth"], l2)
              for key, d in data.items()}
    return PresenceModel(findings=models, **info)
