"""Where findings can be: the lungs (right and left, found once per scan), their zones
and the pleural space beside them.

Objects and data flow
---------------------
scan (:class:`~engine.types.Volume`) -> :func:`lung_masks` (:mod:`.lungs`: HU or
intensity rules, optionally united with a lung model's mask) -> :class:`LungMasks`
(right / left masks, the upper / middle / lower zone of every voxel,
:meth:`LungMasks.label_map` 0 background, 1 right, 2 left in the scan's geometry).

That one object is the ground truth of anatomy for the rest of the engine: the AI
reading's rules (:mod:`engine.inference.gate`: findings inside the lungs, effusion in
the pleural space), its "not assessed" decision (no lung), the quantification (% of
lung, zones, severity) and the report all take it instead of finding the lungs again.
:func:`unite_findings` fills dense findings back into the lungs (consolidation is lung
tissue that an air threshold leaves out) and takes effusion out. :mod:`.boxes` holds the
bounding boxes and slabs of slices that keep whole-scan mask work linear in the scan.

Sides are decided in patient space from the geometry (LPS ``x``): in a standard
radiological axial view the patient's right lung is on the image's left.
"""

from .lungs import LEFT_LUNG, LUNG_LABELS, RIGHT_LUNG, ZONES, LungMasks, lung_masks, unite_findings

__all__ = ["LEFT_LUNG", "LUNG_LABELS", "RIGHT_LUNG", "ZONES", "LungMasks", "lung_masks", "unite_findings"]
