"""Label surfaces for the 3D view, built with vtk (no Qt; safe on a worker thread).

:func:`build_surfaces` turns a label map into one ``vtkPolyData`` per label value with
``vtkDiscreteFlyingEdges3D`` on a coarse copy (:func:`engine.display.downsample_labels`),
in millimetres of the volume's index frame (x to patient left, y posterior, z superior).
vtk is imported here only, and this module only when the 3D view is first shown.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

from engine.display import downsample_labels
from engine.progress import as_progress, check_cancel


def label_image(labels: np.ndarray, spacing: tuple[float, float, float]) -> vtkImageData:
    """A ``vtkImageData`` over a ``(z, y, x)`` uint8 array (vtk's x varies fastest, as in C order)."""
    nz, ny, nx = labels.shape
    img = vtkImageData()
    img.SetDimensions(nx, ny, nz)
    img.SetSpacing(spacing[2], spacing[1], spacing[0])
    scalars = numpy_to_vtk(np.ascontiguousarray(labels).ravel(), deep=True)
    scalars.SetName("labels")
    img.GetPointData().SetScalars(scalars)
    return img


def build_surfaces(labels: np.ndarray, spacing: tuple[float, float, float], values: Iterable[int],
                   max_voxels: int = 2_000_000, smooth: int = 12, progress: Any = None,
                   cancel: Any = None) -> dict[int, Any]:
    """One surface (``vtkPolyData``) per label value present in ``labels``.

    Parameters
    ----------
    labels, spacing
        ``uint8 (z, y, x)`` label map and its ``(sz, sy, sx)`` in mm.
    values
        Label values to build surfaces for; absent values are skipped.
    max_voxels
        Size of the coarse copy the surfaces are computed on.
    smooth
        Windowed-sinc smoothing iterations (0 for none).
    """
    report = as_progress(progress)
    small, sp = downsample_labels(labels, spacing, max_voxels)
    present = np.bincount(small.ravel(), minlength=256)
    values = [int(v) for v in values if v and present[int(v)]]
    report(0.1, "building surfaces")
    img = label_image(small, sp)
    out: dict[int, Any] = {}
    for i, value in enumerate(values):
        check_cancel(cancel)
        fe = vtkDiscreteFlyingEdges3D()
        fe.SetInputData(img)
        fe.SetValue(0, value)
        fe.ComputeScalarsOff()
        fe.ComputeNormalsOff()
        fe.Update()
        poly = fe.GetOutput()
        if smooth and poly.GetNumberOfPoints():
            sm = vtkWindowedSincPolyDataFilter()
            sm.SetInputData(poly)
            sm.SetNumberOfIterations(smooth)
            sm.SetPassBand(0.1)
            sm.NormalizeCoordinatesOn()
            sm.Update()
            poly = sm.GetOutput()
        out[value] = poly
        report(0.1 + 0.9 * (i + 1) / max(len(values), 1), "building surfaces")
    return out


def bounds_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[float, ...]:
    """``(x0, x1, y0, y1, z0, z1)`` of the volume in the surfaces' frame (mm)."""
    return (0.0, (shape[2] - 1) * spacing[2], 0.0, (shape[1] - 1) * spacing[1], 0.0, (shape[0] - 1) * spacing[0])



def build_scene(labels: np.ndarray, spacing: tuple[float, float, float], values: Iterable[int],
                lungs: Any = None, lung_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                max_voxels: int = 2_000_000, progress: Any = None, cancel: Any = None) -> tuple[dict[int, Any], Any]:
    """The label surfaces (:func:`build_surfaces` of ``labels`` with ``spacing``) and, when ``lungs``
    (a bool ``(z, y, x)`` mask with ``lung_spacing``, e.g. the scan's) is given, one smoothed lung
    surface (``None`` otherwise or when empty), both in mm of the scan's index frame."""
    surfaces = build_surfaces(labels, spacing, values, max_voxels, progress=progress, cancel=cancel)
    lung = None
    if lungs is not None:
        check_cancel(cancel)
        small, sp = downsample_labels(lungs, lung_spacing, max_voxels)
        lung = build_surfaces(small.astype(np.uint8), sp, (1,), small.size, smooth=20).get(1)
    return surfaces, lung
