"""Read CT scans and write label maps that line up with them.

Data flow
---------
``load(path)`` -> :func:`detect_format` (content first, then name) -> one reader
(:mod:`.nifti`, :mod:`.dicom_scan` + :mod:`.dicom_read`, :mod:`.sitk_io`,
:mod:`.images`) -> a :class:`~engine.types.Volume` whose array is canonical
``(z, y, x)`` with index axes closest to LPS (see :mod:`.orientation`, the only
module that swaps axes) and whose ``meta["source_orientation"]`` can restore the
source layout. DICOM folders: :mod:`.dicom_scan` reads only the tags it uses
(:mod:`.dicom_header`), once per file; :mod:`.dicom_read` reads uncompressed pixels at
the offsets found there and decodes compressed files on every core
(:mod:`.dicom_decode`, worker processes of :mod:`._dicom_worker`). ``save_labels`` / ``load_labels`` (:mod:`.labels_io`) write and read
label maps on that grid (NIfTI, NRRD/MHA, Slicer ``.seg.nrrd``, DICOM SEG, PNG
folder).

Checks before any voxel is read: :mod:`.dicom_checks` (pixel data length against
Rows x Columns x frames x bits, frame counts, transfer syntax against the codestream,
implausible HU), :mod:`.text_headers` (NRRD/MHA data files only in the header's
folder, compression claims, decompression bombs) and the size guard of
:mod:`._common`. Skipped or missing DICOM slices are named in ``volume.warnings`` and
filled with air, never absorbed into the spacing. Writes go through :mod:`.atomic`.

Errors
------
Every failure is an :class:`engine.errors.LungLensError` with a message a user can
act on: third-party exceptions (nibabel, pydicom, SimpleITK, Pillow) are wrapped.
Readers take ``progress`` and ``cancel`` (see :mod:`engine.progress`) and check the
cancel token per slice or slab.

:func:`open_isolated` runs ``load`` in a child process that Cancel ends at once
(the way the app opens files: a stuck library call cannot hold it).

Non-finite voxels are replaced (NaN/-inf by the lowest finite value, +inf by the
highest) with a warning in ``volume.warnings``; see :mod:`._common`.
"""

from __future__ import annotations

from ._common import MAX_VOLUME_BYTES
from .detect import FORMATS, detect_format
from .dicom_scan import SeriesInfo
from .isolated import open_isolated
from .loading import list_series, load
from .labels_io import embeds_edited, label_format, load_edited, load_labels, save_labels

__all__ = ["load", "open_isolated", "list_series", "save_labels", "load_labels", "detect_format", "label_format",
           "SeriesInfo", "FORMATS", "MAX_VOLUME_BYTES"]
