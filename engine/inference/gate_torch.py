"""The lung gate on a torch device: :func:`~engine.inference.gate.lung_gate`'s rules, same output.

On CUDA the label map of Run AI already lives on the device; taking it to the host for the
gate costs more than the networks. :func:`lung_gate_torch` keeps the full-resolution work
there as torch ops: the class masks, pooling to the gate's cell grid, removing voxels and
counting them, the apical dilation (shifted ORs of a 4-neighbour cross), the posterior and
apical masks, and filling the kept findings back into the lungs with their zone codes.

The envelope and its distance run on the device too, on the gate's cell grid (16x smaller
than the scan): the distance as a separable minimum over offsets within the largest margin
(:func:`_squared_distance`), summed in the order ``scipy.ndimage.distance_transform_edt``
sums, so its values are the same float64 numbers. Only small data goes to the host, for
what has no torch op: the cell grid's 3D regions of rules 1 and 2 (``cc3d``), and the
bounding box of the effusion that rules 1-4 left, for the region rules 4b and 5 (``cc3d``,
medians), which the numpy path runs on it. The result is returned as numpy arrays, like
:func:`~engine.inference.gate.lung_gate`'s, and is bit-identical to it (``tests/test_gate.py``
runs both on the CPU; no GPU timing has been measured yet).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..anatomy.lungs import LEFT, RIGHT, LungMasks, zone_tables
from ..labels import CONSOLIDATION, EFFUSION, FINDING_KEYS, GGO
from ..progress import CancelLike, check_cancel
from ..types import Volume
from .gate_parts import (APEX_MARGIN_PX, EFFUSION_MARGIN_MM, EFFUSION_REACH_MM, KEEP_FRACTION, LUNG_MARGIN_MM,
                         RULES, GateResult, _apex_slices, _canonical, _Dropper, _effusion_regions,
                         _keep_regions, _on_lung_slices, _paste, _posterior_rows, _reach_box, _totals, _z_sign,
                         kept_prep)


def _pool(mask: torch.Tensor, f: int) -> torch.Tensor:
    """In-plane max-pooling of a bool ``(z, y, x)`` tensor by ``f`` (edges padded), like ``_coarse_any``."""
    if f == 1:
        return mask.clone()
    nz, ny, nx = mask.shape
    cy, cx = -(-ny // f), -(-nx // f)
    if cy * f != ny or cx * f != nx:
        padded = torch.zeros((nz, cy * f, cx * f), dtype=torch.bool, device=mask.device)
        padded[:, :ny, :nx] = mask
        mask = padded
    return mask.reshape(nz, cy, f, cx, f).any(dim=4).any(dim=2)


def _up(cells: torch.Tensor, f: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Nearest-neighbour in-plane upsampling of cells back to ``shape``."""
    if f == 1:
        return cells
    return cells.repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)[:, :shape[1], :shape[2]]


def _dilate_cross(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """In-plane binary dilation by the 4-neighbour cross, ``steps`` times (``ndimage.binary_dilation``'s
    default structure and ``iterations``, zero outside the image)."""
    for _ in range(steps):
        grown = mask.clone()
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        grown[:, :, 1:] |= mask[:, :, :-1]
        grown[:, :, :-1] |= mask[:, :, 1:]
        mask = grown
    return mask


def _host(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()


def _fill_between(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Pixels with a ``mask`` pixel on both sides along ``dim`` (mask included), like the numpy path."""
    m = mask.to(torch.uint8)
    fwd = torch.cummax(m, dim=dim).values
    rev = torch.cummax(m.flip(dim), dim=dim).values.flip(dim)
    return (fwd & rev).bool()


def _box_t(mask: torch.Tensor) -> Optional[tuple[slice, slice, slice]]:
    """Bounding box of a bool ``(z, y, x)`` tensor (``None`` when empty)."""
    zs, ys, xs = (np.flatnonzero(_host(mask.any(dim=a).any(dim=b))) for a, b in ((2, 1), (2, 0), (1, 0)))
    if zs.size == 0:
        return None
    return (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))


def _squared_distance(env: torch.Tensor, sampling: tuple[float, float, float], reach: float) -> torch.Tensor:
    """float64 squared distance (mm) to the nearest ``env`` cell, exact up to ``reach``; larger (or inf) beyond.

    A separable minimum over offsets ``|d| * s <= reach`` per axis, z then y then x, so that each
    value is summed as ``scipy.ndimage.distance_transform_edt`` sums it: ``((dz*sz)^2 + (dy*sy)^2) + (dx*sx)^2``
    (float addition is monotonic, so the minimum of the sums is the sum for the nearest cell).
    """
    g = torch.where(env, 0.0, torch.inf).to(torch.float64)
    for dim, s in enumerate(sampling):
        best = g.clone()
        n = min(int(np.floor(reach / s)) + 1, g.shape[dim] - 1)  # one more offset: a superset is safe
        for d in range(1, n + 1):
            w = (d * s) * (d * s)
            head = g.narrow(dim, 0, g.shape[dim] - d)
            tail = g.narrow(dim, d, g.shape[dim] - d)
            lo = best.narrow(dim, d, g.shape[dim] - d)   # cells d after a feature
            torch.minimum(lo, head + w, out=lo)
            hi = best.narrow(dim, 0, g.shape[dim] - d)   # cells d before one
            torch.minimum(hi, tail + w, out=hi)
        g = best
    return g


def _distance_masks_t(z0: int, right: torch.Tensor, left: torch.Tensor, cshape: tuple[int, int, int],
                      volume: Volume, f: int, margins_mm: tuple[float, ...]
                      ) -> tuple[Optional[tuple[slice, slice, slice]], list[torch.Tensor]]:
    """``gate._distance_masks`` on the device (same crop, same values at the thresholds)."""
    env = (_fill_between(left, 1) & _fill_between(left, 2)) | (_fill_between(right, 1) & _fill_between(right, 2))
    ebox = _box_t(env)
    if ebox is None:
        return None, []
    env = env[ebox]
    reach = max(margins_mm)
    box, inner, sampling = _reach_box(ebox, z0, cshape, volume, f, reach)
    inside = torch.zeros(tuple(s.stop - s.start for s in box), dtype=torch.bool, device=env.device)
    inside[inner] = env
    dist = torch.sqrt(_squared_distance(inside, sampling, reach))
    return box, [dist <= m for m in margins_mm]


class _Remover:
    """Removes voxels of the label tensor and counts them per rule and finding."""

    def __init__(self, out: torch.Tensor) -> None:
        self.out = out
        self.by_rule: dict[str, dict[str, int]] = {r: {} for r in RULES}

    def __call__(self, rule: str, mask: torch.Tensor) -> None:
        counts = _host(torch.bincount(self.out[mask].long(), minlength=4))
        per = self.by_rule[rule]
        for v in (GGO, CONSOLIDATION, EFFUSION):
            if counts[v]:
                per[FINDING_KEYS[v]] = per.get(FINDING_KEYS[v], 0) + int(counts[v])
        self.out.masked_fill_(mask, 0)

    def dense(self) -> torch.Tensor:
        return (self.out == GGO) | (self.out == CONSOLIDATION)

    def effusion(self) -> torch.Tensor:
        return self.out == EFFUSION


def _filled(lungs: LungMasks, left: torch.Tensor, right: torch.Tensor, out: torch.Tensor,
            volume: Volume) -> LungMasks:
    """:func:`~engine.anatomy.unite_findings` on the device: the lungs with the kept findings filled back."""
    dense = (out == GGO) | (out == CONSOLIDATION)
    not_eff = out != EFFUSION
    zones = torch.as_tensor(np.ascontiguousarray(lungs.zones)).to(out.device)
    left = (left | (dense & (zones >= 10))) & not_eff
    right = (right | (dense & (zones >= 7) & (zones <= 9))) & not_eff & ~left
    nz, ny, nx = out.shape
    extents: dict = {}
    cols: dict[int, float] = {}
    per_slice: dict[int, np.ndarray] = {}
    for name, side, mask in (("right", RIGHT, right), ("left", LEFT, left)):
        per_slice[side] = _host(mask.sum(dim=(1, 2)))
        ks = np.flatnonzero(per_slice[side])
        extents[name] = (int(ks[0]), int(ks[-1])) if ks.size else None
        per_col = _host(mask.sum(dim=(0, 1)))
        if per_col.any():
            cols[side] = float(np.average(np.arange(nx), weights=per_col))
    outside, right_code, left_code = (torch.as_tensor(t).to(out.device)
                                      for t in zone_tables(extents, cols, nz, nx, volume.geometry))
    codes = torch.where(left, left_code[:, None, None],
                        torch.where(right, right_code[:, None, None], outside[:, None, :]))
    counts = np.zeros(13, dtype=np.int64)
    np.add.at(counts, _host(right_code).astype(np.int64), per_slice[RIGHT])
    np.add.at(counts, _host(left_code).astype(np.int64), per_slice[LEFT])
    return LungMasks(left=_host(left), right=_host(right), zones=_host(codes), extents=extents, method=lungs.method,
                     warnings=list(lungs.warnings or []), zone_voxels=counts)


def lung_gate_torch(volume: Volume, labels: np.ndarray | torch.Tensor, lungs: Optional[LungMasks],
                    device: Optional[str | torch.device] = None, cancel: Optional[CancelLike] = None,
                    keep_fraction: float = KEEP_FRACTION, effusion_margin_mm: float = EFFUSION_MARGIN_MM,
                    lung_margin_mm: float = LUNG_MARGIN_MM) -> GateResult:
    """:func:`~engine.inference.gate.lung_gate` with the full-resolution work on ``device`` (called by it).

    ``labels`` may be a numpy array or a tensor (used where it lives when ``device`` is
    ``None``). The result holds numpy arrays, equal to :func:`~engine.inference.gate.lung_gate`'s.
    """
    if isinstance(labels, torch.Tensor):
        dev = torch.device(device) if device is not None else labels.device
        out = labels.to(dev, copy=True)
    else:
        dev = torch.device(device or "cpu")
        out = torch.as_tensor(np.ascontiguousarray(labels)).to(dev, copy=True)
    nz, ny, nx = out.shape
    remove = _Remover(out)
    if lungs is None:  # no lung: every finding goes
        remove("outside_lungs", remove.dense())
        remove("outside_pleural_space", remove.effusion())
        by_rule = _canonical(remove.by_rule)
        return GateResult(_host(out), np.zeros(nz, dtype=bool), _totals(by_rule), None, by_rule)
    f = max(1, int(min(ny, nx) // 128))
    left = torch.as_tensor(np.ascontiguousarray(lungs.left)).to(dev)
    right = torch.as_tensor(np.ascontiguousarray(lungs.right)).to(dev)
    cshape = (nz, -(-ny // f), -(-nx // f))
    margins = (lung_margin_mm, effusion_margin_mm, EFFUSION_REACH_MM)
    made = kept_prep(volume, lungs, margins)  # made on the host when the scan opened: the same arrays
    if made is not None:
        lung_slices, dbox, host_masks = made.lung_slices, made.box, list(made.masks)
    else:
        lung_slices = _host(left.any(dim=2).any(dim=1) | right.any(dim=2).any(dim=1))
        dbox, host_masks = None, []
        zs = np.flatnonzero(lung_slices)
        if zs.size:
            zr = slice(int(zs[0]), int(zs[-1]) + 1)
            dbox, masks = _distance_masks_t(zr.start, _pool(right[zr], f), _pool(left[zr], f), cshape, volume, f,
                                            margins)
            host_masks = [_host(m) for m in masks]
    whole = tuple(slice(0, n) for n in cshape)
    if dbox is None:
        in_lung = near = reach = np.zeros(cshape, dtype=bool)
    else:
        in_lung, near, reach = (_paste(m, dbox, whole) for m in host_masks)  # type: ignore[arg-type]
    in_lung, near, reach = _on_lung_slices([in_lung, near, reach], 0, lung_slices, volume.geometry.spacing_known,
                                           _z_sign(volume))
    apex = _apex_slices(lungs, volume)
    apex_t = torch.as_tensor(apex).to(dev)
    check_cancel(cancel)

    # 1. GGO and consolidation inside the lungs, and inside the lung itself at the apices
    dense = remove.dense()
    coarse = _host(_pool(dense, f))
    if coarse.any():
        kept = _keep_regions(coarse, in_lung, keep_fraction) & in_lung
        remove("outside_lungs", dense & _up(torch.as_tensor(coarse & ~kept).to(dev), f, out.shape))
        if apex.any():
            near_lung = _dilate_cross((left | right) & apex_t[:, None, None], APEX_MARGIN_PX)
            remove("apex", remove.dense() & apex_t[:, None, None] & ~near_lung)
    check_cancel(cancel)

    # 2-4. effusion in the dependent pleural space, not at the apex
    eff = remove.effusion()
    coarse = _host(_pool(eff, f))
    if coarse.any():
        kept = _keep_regions(coarse, near, keep_fraction) & reach
        gone = _up(torch.as_tensor(coarse & ~kept).to(dev), f, out.shape)
        remove("outside_pleural_space", eff & (gone | left | right))
        post = _posterior_rows((_host(right.any(dim=2)), _host(left.any(dim=2))), volume, slice(0, ny))
        remove("not_dependent", remove.effusion() & ~torch.as_tensor(post).to(dev)[:, :, None])
        remove("apex", remove.effusion() & apex_t[:, None, None])
        # 4b-5. the region rules on the host, inside the box of what is left
        eff = remove.effusion()
        zs, ys, xs = (np.flatnonzero(_host(eff.any(dim=a).any(dim=b))) for a, b in ((2, 1), (2, 0), (1, 0)))
        if zs.size:
            box = (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1),
                   slice(int(xs[0]), int(xs[-1]) + 1))
            sub = _host(out[box]).copy()
            _effusion_regions(_Dropper(sub, box, remove.by_rule, origin=(box[0].start, box[1].start, box[2].start)),
                              volume)
            out[box] = torch.as_tensor(sub).to(dev)
    check_cancel(cancel)
    filled = _filled(lungs, left, right, out, volume)
    by_rule = _canonical(remove.by_rule)
    return GateResult(_host(out), lung_slices, _totals(by_rule), filled, by_rule)
