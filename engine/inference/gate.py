"""Anatomy rules: findings only where they can be.

The segmentation models were trained on 50 thoracic slices that all show COVID-19
pneumonia. On a whole CT they also mark gas-filled bowel, the stomach, the diaphragm's
dome, neck soft tissue and dependent lung. :func:`lung_gate` keeps a finding only where
anatomy allows it, from the scan's one :class:`~engine.anatomy.LungMasks` (found once by
:mod:`engine.anatomy`, never here). Each rule counts what it removed (voxels per finding).

The rules (``docs/MODELS.md`` states them with their sources)
----------------------------------------------------------
*Envelope*: per slice and per lung, the pixels between lung pixels both along their row
and along their column (an orthogonally convex fill): the lung with the dense findings it
encloses, not the abdomen.

1. ``outside_lungs`` (GGO, consolidation): GGO and consolidation are lung tissue. A
   voxel is kept only within ``lung_margin_mm`` (3D distance) of the envelope, and a
   3D region of them only when at least half of it lies there. The margin keeps the
   subpleural consolidation of COVID-19 that an air threshold leaves out of the lung; a
   slice without lung keeps none (the 3D margin does not reach onto it). The kept voxels are then filled back into the lungs.
2. ``outside_pleural_space`` (effusion): fluid lies between lung and chest wall, outside
   the lung. A voxel is kept only outside the lung masks and within
   :data:`EFFUSION_REACH_MM` of the envelope, a region only when at least half of it lies
   within ``effusion_margin_mm``. On a slice without lung, only below the lung base (the
   costophrenic recess) on scans with known spacing.
3. ``not_dependent`` (effusion): in a supine patient free fluid lies posteriorly. A
   voxel is kept only behind the anterior quarter of its lung's anterior-posterior extent
   on that slice (:data:`DEPENDENT_FROM`; posterior taken from the geometry, LPS ``y``).
4. ``apex``: never effusion at the apices of a supine patient: effusion in the upper
   :data:`APEX_FRACTION` of a lung's cranio-caudal extent is removed (volumes of at least
   8 slices; superior taken from the geometry). On those slices GGO and consolidation must
   lie within :data:`APEX_MARGIN_PX` pixels of the lung mask itself: the model marks the
   neck and thoracic-inlet soft tissue around the small apical lung, which the 10 mm
   margin and the envelope would otherwise keep.
   (Applied right after rule 1.)
4b. ``too_small`` (effusion, scans with known spacing): a 3D effusion region under
   :data:`EFFUSION_MIN_ML` is removed: thin crescents along the diaphragm and chest wall are
   partial volume, not a reportable effusion.
5. ``not_fluid_density`` (effusion, HU scans only): simple effusions measure about
   0-20 HU, exudates and haemothorax more (``CLINICAL.md``). Voxels below
   ``FLUID_MIN_VOXEL_HU`` (lung or air in partial volume) are removed, and a 3D region
   whose median lies outside ``FLUID_HU`` (dependent lung at -600..-200 HU is the
   commonest false effusion; fresh clot stays under about 90 HU) is removed whole.

The work runs on a grid subsampled in-plane (4x for 512-pixel slices): cells are 1-2 mm,
well below the size of a finding that matters.

Cost
----
The gate is linear in the scan and works inside boxes: full-resolution passes are made
only inside the findings' bounding box, the distance to the envelope only inside the
lungs' box plus :data:`EFFUSION_REACH_MM` (no voxel farther away can be kept), and the 3D
regions are labelled by ``cc3d`` (connected-components-3d, 6-connected like
``scipy.ndimage.label``'s default) on the coarse grid, and full-resolution temporaries are
made a slab of slices at a time (:mod:`engine.anatomy.boxes`). The output is bit-identical
to the whole-volume formulation the rules were written in (``benchmarks/gate.py`` measures
both). A label tensor on a CUDA device is gated there (:mod:`.gate_torch`).
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from ..anatomy.boxes import Box, bounding_box
from ..anatomy.lungs import LungMasks, unite_findings
from ..labels import EFFUSION
from ..progress import CancelLike, check_cancel
from ..types import Volume
from .gate_parts import (APEX_FRACTION, APEX_MARGIN_PX, DENSE, DEPENDENT_FROM, EFFUSION_MARGIN_MM, EFFUSION_MIN_ML,
                         EFFUSION_REACH_MM, FLUID_HU, FLUID_MIN_VOXEL_HU, KEEP_FRACTION, LUNG_MARGIN_MM, RULE_TEXT,
                         RULES, GatePrep, GateResult, _apex_slices, _canonical, _cell_box, _Dropper,
                         _effusion_rules, _keep_regions, _near_lung, _of, _on_lung_slices, _paste, _totals,
                         _voxel_box, _z_sign, envelope, kept_prep, prepare_gate)

__all__ = ["APEX_FRACTION", "APEX_MARGIN_PX", "DEPENDENT_FROM", "EFFUSION_MARGIN_MM", "EFFUSION_MIN_ML",
           "EFFUSION_REACH_MM", "FLUID_HU", "FLUID_MIN_VOXEL_HU", "KEEP_FRACTION", "LUNG_MARGIN_MM", "RULES",
           "RULE_TEXT", "GatePrep", "GateResult", "envelope", "kept_prep", "lung_gate", "prepare_gate"]

log = logging.getLogger(__name__)


def lung_gate(volume: Volume, labels: np.ndarray, lungs: Optional[LungMasks],
              cancel: Optional[CancelLike] = None, keep_fraction: float = KEEP_FRACTION,
              effusion_margin_mm: float = EFFUSION_MARGIN_MM,
              lung_margin_mm: float = LUNG_MARGIN_MM, device: Optional[object] = None,
              own_lungs: bool = False, own_labels: bool = False) -> GateResult:
    """Apply the module's rules to ``labels`` (0..3 on ``volume``'s grid).

    ``lungs`` is the scan's :class:`~engine.anatomy.LungMasks` (found once by the
    caller). ``None`` means the scan has no lung: every finding is removed (rule
    ``outside_lungs`` / ``outside_pleural_space``).

    The work runs on an accelerator (:func:`~engine.inference.gate_torch.lung_gate_torch`,
    same output) when ``labels`` is a torch tensor on one (CUDA) or ``device`` names one (Run
    AI's device: ``"cuda"``, a ``torch.device``); a CPU tensor is read as numpy. The result
    holds numpy arrays either way.

    ``own_lungs``: ``lungs`` belong to the caller's reading alone (Run AI found them): the
    findings are filled back into its masks in place (no full-size copy) and ``lungs`` must
    not be used afterwards, only the result's. ``own_labels``: ``labels`` (a numpy array) are
    edited in place and returned, not copied. The lungs' part is :func:`prepare_gate`'s, made
    now or earlier.
    """
    on_tensor = type(labels).__module__.split(".")[0] == "torch"  # checked without importing torch
    where = str(device) if device is not None else (str(labels.device) if on_tensor else "cpu")  # type: ignore
    if where.split(":")[0] != "cpu":
        from .gate_torch import lung_gate_torch
        try:
            return lung_gate_torch(volume, labels, lungs, device=where, cancel=cancel, keep_fraction=keep_fraction,
                                   effusion_margin_mm=effusion_margin_mm, lung_margin_mm=lung_margin_mm)
        except RuntimeError as e:  # device out of memory or an op it lacks: the host gives the same output
            log.warning("The lung gate fell back to the CPU (%s: %s).", type(e).__name__, e)
    if on_tensor:
        labels = labels.cpu().numpy()  # type: ignore[union-attr]
    labels = np.asarray(labels)
    nz, ny, nx = labels.shape
    out = labels if own_labels and labels.flags.writeable else labels.copy()
    found = bounding_box(out) if out.size else None
    if found is None:  # no finding: nothing to remove
        by_rule: dict[str, dict[str, int]] = {r: {} for r in RULES}
        if lungs is None:
            return GateResult(out, np.zeros(nz, dtype=bool), {}, None, by_rule)
        lung_slices = lungs.left.any(axis=(1, 2)) | lungs.right.any(axis=(1, 2))
        return GateResult(out, lung_slices, {}, unite_findings(lungs, out, volume.geometry, own_lungs), by_rule)

    if lungs is None:
        drop = _Dropper(out, found)
        drop.each("outside_lungs", lambda sub, k, at: _of(sub, DENSE))
        drop.each("outside_pleural_space", lambda sub, k, at: sub == EFFUSION)
        by_rule = _canonical(drop.by_rule)
        return GateResult(out, np.zeros(nz, dtype=bool), _totals(by_rule), None, by_rule)

    f = max(1, int(min(ny, nx) // 128))
    box, cbox = _cell_box(found, f, out.shape)  # the findings' box, in voxels and in cells
    drop = _Dropper(out, box)
    sub_shape = drop.sub.shape
    prep = prepare_gate(volume, lungs, effusion_margin_mm, lung_margin_mm)  # made earlier, or now
    lung_slices, dbox, masks = prep.lung_slices, prep.box, prep.masks
    if dbox is None:
        in_lung = near = reach = np.zeros(tuple(s.stop - s.start for s in cbox), dtype=bool)
    else:
        in_lung, near, reach = (_paste(m, dbox, cbox) for m in masks)
    in_lung, near, reach = _on_lung_slices([in_lung, near, reach], box[0].start, lung_slices,
                                           volume.geometry.spacing_known, _z_sign(volume))
    check_cancel(cancel)

    # 1. GGO and consolidation inside the lungs
    coarse = drop.coarse(DENSE, f)
    if coarse.any():
        kept = _keep_regions(coarse, in_lung, keep_fraction) & in_lung
        drop.cells("outside_lungs", coarse & ~kept, f, DENSE)
        apex = _apex_slices(lungs, volume)
        kb = bounding_box(kept & apex[box[0], None, None])
        if kb is not None:  # what is left lies in the kept cells
            # around the apices the neck and thoracic-inlet soft tissue is not lung: inside the lung only
            def off_apical_lung(sub: np.ndarray, k: slice, at: Box) -> np.ndarray:
                return _of(sub, DENSE) & apex[at[0], None, None] & ~_near_lung(lungs, at, APEX_MARGIN_PX)
            drop.within(_voxel_box(kb, f, sub_shape)).each("apex", off_apical_lung)
    check_cancel(cancel)

    # 2-5. effusion in the dependent pleural space, not at the apex, of fluid density
    coarse = drop.coarse((EFFUSION,), f)
    if coarse.any():
        kept = _keep_regions(coarse, near, keep_fraction) & reach
        drop.cells("outside_pleural_space", coarse & ~kept, f, (EFFUSION,))
        kb = bounding_box(kept)
        if kb is not None:  # what is left lies in the kept cells
            _effusion_rules(drop.within(_voxel_box(kb, f, sub_shape)), lungs, volume)
    check_cancel(cancel)
    filled = unite_findings(lungs, out, volume.geometry, own_lungs)
    by_rule = _canonical(drop.by_rule)
    return GateResult(out, lung_slices, _totals(by_rule), filled, by_rule)
