"""One exception hierarchy for LungLens, with messages a user can act on.

Every exception raised on purpose by :mod:`engine` derives from
:class:`LungLensError`. Its ``str()`` says what happened and what to do, and is
shown to the user unchanged (by the GUI in a message box, by the CLI as one
``error:`` line).
"""

from __future__ import annotations


class LungLensError(Exception):
    """Base class of every error LungLens raises on purpose."""


class UnsupportedFormatError(LungLensError):
    """The file or folder is not in a format LungLens can read or write."""


class CorruptFileError(LungLensError):
    """The file claims a supported format but its contents are damaged or inconsistent."""


class SeriesError(LungLensError):
    """A DICOM folder holds no usable series, or the chosen series does not exist."""


class GeometryMismatchError(LungLensError):
    """Two arrays (e.g. a scan and a label map) do not share the same voxel grid."""


class OverwriteError(LungLensError):
    """A write would overwrite the source scan or another file that must be kept."""


class CancelledError(LungLensError):
    """The user cancelled a long-running operation. Not a failure: show no error."""

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)


class ModelError(LungLensError):
    """A model or its weights are missing, damaged or incompatible."""


class DataError(LungLensError):
    """Input data for training, evaluation or quantification is unusable."""
