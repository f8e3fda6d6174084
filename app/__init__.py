"""LungLens desktop application (PySide6 + pyqtgraph + vtk).

The app holds no numerics: it assembles widgets, runs engine functions on worker
threads, and mirrors engine models. See ``app.__main__`` for the entry point.
"""

from engine import __version__

__all__ = ["__version__"]
