"""From a slab's class probabilities at model size to its labels at the slice's size.

The predictor's reading is defined at full resolution: the model-size class probabilities
(background outside the slab's torso crop) are resized to the slice (bilinear,
``align_corners=False``), the label of a pixel is their argmax (ties to the lower class),
its confidence the quantised probability of its finding (of GGO on background pixels:
what the presence model was fitted on, docs/MODELS.md). :func:`read_slab` gives exactly
those arrays while doing the full-resolution work only where it can change anything.

Why the window is exact
-----------------------
When the slice is a power-of-two multiple ``f`` of the model size (512 = 2 x 256), every
bilinear weight is a dyadic fraction (0.25 / 0.75 for ``f = 2``) and every source
coordinate ``(dst + 0.5) / f - 0.5`` is computed without rounding. A full-resolution pixel
whose two source rows (or columns) both lie outside the crop interpolates pure background
``(1, 0, 0, 0)`` and stays exactly that (``l0 + l1 == 1`` without rounding): label 0,
confidence 0, probability maps 0. Inside the window of the crop grown by one model pixel,
resizing the window alone uses the same source pixels, the same weights and the same
formula as resizing the whole frame (edge clamping only ever reads background rows there),
so the values are bit-identical (tests compare both, on random and on real model output).
Other size ratios take the whole frame, as before.

Inside the window the work is also leaner than the textbook formulation it reproduces:
``max(1)`` gives both the label (its indices) and the confidence of labelled pixels (its
values: the probability of the label's own class when each finding has one class), so no
full-resolution gather of finding probabilities is made; the label lookup is skipped when
the classes already are the label values; quantisation runs in place.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import nets as N

Window = tuple[int, int, int, int]


def _factor(full: int, size: int) -> int:
    """The integer power-of-two factor from ``size`` to ``full`` (0 when there is none)."""
    if size <= 0 or full < size or full % size:
        return 0
    f = full // size
    return f if f & (f - 1) == 0 else 0


def frame_window(box: Window, size: tuple[int, int], full: tuple[int, int]) -> Optional[tuple[Window, Window]]:
    """The model-size window (the crop ``box`` grown by one pixel) and its full-size image.

    ``None`` when the exact shortcut does not apply (the slice is not a power-of-two
    multiple of the model size): then the whole frame is resized.
    """
    fy, fx = _factor(full[0], size[0]), _factor(full[1], size[1])
    if not fy or not fx:
        return None
    y0, y1, x0, x1 = box
    ey0, ey1, ex0, ex1 = max(y0 - 1, 0), min(y1 + 1, size[0]), max(x0 - 1, 0), min(x1 + 1, size[1])
    return (ey0, ey1, ex0, ex1), (ey0 * fy, ey1 * fy, ex0 * fx, ex1 * fx)


def upsampled(probs: torch.Tensor, box: Window, size: tuple[int, int],
              full: tuple[int, int]) -> tuple[torch.Tensor, Window]:
    """Class probabilities at the slice's size inside a window, and the window ``(y0, y1, x0, x1)``.

    ``probs`` ``(n, K, y1 - y0, x1 - x0)`` are the probabilities of the model-size crop
    ``box`` (background outside it). Every pixel outside the returned window is exactly
    background; inside, the values equal those of resizing the whole model-size frame.
    """
    win = frame_window(box, size, full)
    if win is None:
        return N.resize(N.in_frame(probs, box, size), full), (0, full[0], 0, full[1])
    (ey0, ey1, ex0, ex1), out_win = win
    y0, y1, x0, x1 = box
    frame = probs
    if (ey0, ey1, ex0, ex1) != (y0, y1, x0, x1):  # background ring of one model pixel
        frame = torch.zeros((probs.shape[0], probs.shape[1], ey1 - ey0, ex1 - ex0), dtype=probs.dtype,
                            device=probs.device)
        frame[:, 0] = 1.0
        frame[:, :, y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0] = probs
    shape = (out_win[1] - out_win[0], out_win[3] - out_win[2])
    if tuple(frame.shape[-2:]) != shape:
        frame = F.interpolate(frame, size=shape, mode="bilinear", align_corners=False)
    return frame, out_win


def _quantise_(p: torch.Tensor) -> torch.Tensor:
    """:func:`.nets.quantise` in place on ``p`` (the same operations, so the same bytes)."""
    return p.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)


def read_slab(probs: torch.Tensor, box: Window, size: tuple[int, int], full: tuple[int, int],
              label_map: np.ndarray, groups: list[list[int]],
              keep_probabilities: bool = False) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Window]:
    """Labels, confidence and (optionally) probability maps of a slab at the slice's size.

    Parameters
    ----------
    probs
        Class probabilities ``(n, K, ...)`` of the model-size crop ``box`` (softmax output).
    box, size, full
        The crop ``(y0, y1, x0, x1)`` in the model-size frame ``size``, and the slice size.
    label_map
        LungLens label value of each class (:meth:`.nets.Net.label_map`).
    groups
        The classes of each finding (:func:`.nets.finding_channels`).
    keep_probabilities
        Also return the uint8 finding probability maps ``(n, 3, Y, X)``.

    Returns
    -------
    labels, confidence, probabilities, window
        uint8 ``(n, Y, X)`` numpy arrays (and ``(n, 3, Y, X)`` or ``None``), and the window
        ``(y0, y1, x0, x1)`` outside which all three are 0 (so a caller copying them into
        zeroed arrays copies only the window).
    """
    n = probs.shape[0]
    p, (y0, y1, x0, x1) = upsampled(probs, box, size, full)
    vals, idx = p.max(1)  # ties to the lower class (as torch documents), like argmax(1)
    lut = np.asarray(label_map, dtype=np.uint8)
    if np.array_equal(lut, np.arange(lut.size)):
        lab = idx.to(torch.uint8)
    else:
        lab = torch.as_tensor(lut, device=p.device)[idx]
    del idx
    if all(len(g) == 1 for g in groups):
        # a labelled pixel's finding probability is its class's: the maximum itself; background
        # pixels take GGO's (the finding gathered at label 0 - 1, clamped to 0)
        conf = torch.where(lab == 0, p[:, groups[0][0]], vals)
    else:
        fprobs = N.finding_probabilities(p, groups)
        conf = fprobs.gather(1, (lab.long() - 1).clamp_(min=0).unsqueeze(1))[:, 0]
    del vals
    conf = _quantise_(conf)
    labels = np.zeros((n, *full), dtype=np.uint8)
    confidence = np.zeros((n, *full), dtype=np.uint8)
    labels[:, y0:y1, x0:x1] = lab.cpu().numpy()
    confidence[:, y0:y1, x0:x1] = conf.cpu().numpy()
    maps = None
    if keep_probabilities:
        maps = np.zeros((n, 3, *full), dtype=np.uint8)
        maps[:, :, y0:y1, x0:x1] = _quantise_(N.finding_probabilities(p, groups)).cpu().numpy()
    return labels, confidence, maps, (y0, y1, x0, x1)


def lung_slab(probs: torch.Tensor, box: Window, size: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """The lung model's mask ``(n, Y, X)`` at the slice's size: lung classes' probability above 0.5."""
    p, (y0, y1, x0, x1) = upsampled(probs, box, size, full)
    out = np.zeros((probs.shape[0], *full), dtype=bool)
    out[:, y0:y1, x0:x1] = (p[:, 1:].sum(1) > 0.5).cpu().numpy()
    return out
