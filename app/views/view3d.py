"""The 3D view of label surfaces (vtk), with two back-ends.

- ``"interactive"``: a ``QVTKRenderWindowInteractor`` (needs an OpenGL display).
- ``"image"``: on offscreen platforms (tests, ``--screenshot``) vtk renders offscreen
  (EGL/OSMesa) into an image shown in a ``QLabel``; drag rotates, wheel zooms.

When neither works the widget shows a message instead of crashing. Whether vtk can
render offscreen is probed once per process in a subprocess (a failing OpenGL driver
can abort the process that tries). vtk is imported only when this widget is created.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication, QImage, QMouseEvent, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from engine.labels import LabelTable

log = logging.getLogger(__name__)

OFFSCREEN_PLATFORMS = ("offscreen", "minimal")
_PROBE = ("from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkRenderer\n"
          "import vtkmodules.vtkRenderingOpenGL2\n"
          "w = vtkRenderWindow(); w.SetOffScreenRendering(1); w.AddRenderer(vtkRenderer())\n"
          "w.SetSize(8, 8); w.Render(); print('ok')\n")
_offscreen_ok: Optional[bool] = None
_probe_thread: Optional[threading.Thread] = None


def _probe() -> None:
    global _offscreen_ok
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        ok = out.returncode == 0 and out.stdout.strip().endswith("ok")
    except (OSError, subprocess.SubprocessError):
        ok = False
    if _offscreen_ok is None:  # a result set meanwhile (a test, a second probe) stands
        _offscreen_ok = ok


def probe_in_background() -> None:
    """Start the offscreen probe on a thread (a subprocess: no GIL held), so the first 3D view does not wait for
    it (it took 1.1 s of the first show, QA pass); nothing to do on a desktop with a display."""
    global _probe_thread
    if (_offscreen_ok is None and _probe_thread is None
            and QGuiApplication.platformName() in OFFSCREEN_PLATFORMS):
        _probe_thread = threading.Thread(target=_probe, name="lunglens-3d-probe", daemon=True)
        _probe_thread.start()


def offscreen_rendering_available() -> bool:
    """True when vtk can render offscreen here (probed once, in a subprocess)."""
    if _offscreen_ok is None:
        if _probe_thread is not None:
            _probe_thread.join()
        else:
            _probe()
    return bool(_offscreen_ok)


class Surface3DView(QWidget):
    """Label surfaces seen from the front (anterior), superior up, patient right on the left.

    The lungs show as a faint translucent surface (:meth:`set_lungs`) and a lettered cube in
    the lower-left corner (A/P, R/L, S/I) tells the orientation as the scene turns.
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(200, 200)
        self.backend: Optional[str] = None
        self.actors: dict[int, Any] = {}
        self._drag: Optional[QPoint] = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self._layout.addWidget(self.message)
        self.message.hide()
        self._init_backend()

    # -- set-up ---------------------------------------------------------------
    def _init_backend(self) -> None:
        offscreen = QGuiApplication.platformName() in OFFSCREEN_PLATFORMS
        if offscreen and not offscreen_rendering_available():
            self._disable("The 3D view needs OpenGL, which is not available here. Slice views work as usual.")
            return
        try:
            from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow
            import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL classes)
            import vtkmodules.vtkInteractionStyle  # noqa: F401
        except ImportError as exc:  # pragma: no cover - vtk is a dependency
            self._disable(f"The 3D view needs vtk ({exc}).")
            return
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.08, 0.08, 0.1)
        self.lung_actor: Any = None
        if offscreen:
            self.backend = "image"
            self.render_window = vtkRenderWindow()
            self.render_window.SetOffScreenRendering(1)
            self.render_window.AddRenderer(self.renderer)
            self.canvas = QLabel()
            self.canvas.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            self._layout.addWidget(self.canvas)
        else:
            from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
            self.backend = "interactive"
            self.canvas = QVTKRenderWindowInteractor(self)
            self._layout.addWidget(self.canvas)
            self.render_window = self.canvas.GetRenderWindow()
            self.render_window.AddRenderer(self.renderer)
            from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
            self.render_window.GetInteractor().SetInteractorStyle(vtkInteractorStyleTrackballCamera())
            self.canvas.Initialize()
        self._add_orientation_marker()
        self.reset_camera()

    def _add_orientation_marker(self) -> None:
        """A cube lettered A/P, L/R, S/I in the lower-left corner, turning with the camera.

        It is drawn by a second renderer on a layer above the scene, whose camera copies the
        main camera's direction before every frame (works without an interactor, offscreen too).
        """
        from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
        from vtkmodules.vtkRenderingCore import vtkRenderer

        cube = vtkAnnotatedCubeActor()
        # the surfaces' frame: x to patient left, y posterior, z superior (LPS)
        for face, text in (("XPlus", "L"), ("XMinus", "R"), ("YPlus", "P"), ("YMinus", "A"), ("ZPlus", "S"),
                           ("ZMinus", "I")):
            getattr(cube, f"Set{face}FaceText")(text)
        cube.SetFaceTextScale(0.6)
        cube.GetCubeProperty().SetColor(0.25, 0.3, 0.4)
        cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
        cube.GetTextEdgesProperty().SetLineWidth(1.5)
        for prop in (cube.GetXPlusFaceProperty(), cube.GetXMinusFaceProperty()):
            prop.SetColor(1.0, 0.45, 0.45)
        for prop in (cube.GetYPlusFaceProperty(), cube.GetYMinusFaceProperty()):
            prop.SetColor(0.5, 1.0, 0.5)
        for prop in (cube.GetZPlusFaceProperty(), cube.GetZMinusFaceProperty()):
            prop.SetColor(0.55, 0.75, 1.0)
        self.marker = cube
        self.marker_renderer = vtkRenderer()
        self.marker_renderer.SetViewport(0.0, 0.0, 0.2, 0.2)
        self.marker_renderer.SetLayer(1)
        self.marker_renderer.InteractiveOff()
        self.marker_renderer.AddActor(cube)
        self.render_window.SetNumberOfLayers(2)
        self.render_window.AddRenderer(self.marker_renderer)
        self.renderer.AddObserver("StartEvent", lambda *_a: self._sync_marker())

    def _sync_marker(self) -> None:
        cam, mcam = self.renderer.GetActiveCamera(), self.marker_renderer.GetActiveCamera()
        dop = cam.GetDirectionOfProjection()
        mcam.SetFocalPoint(0.0, 0.0, 0.0)
        mcam.SetPosition(-3.2 * dop[0], -3.2 * dop[1], -3.2 * dop[2])
        mcam.SetViewUp(cam.GetViewUp())
        self.marker_renderer.ResetCameraClippingRange()

    def _disable(self, message: str) -> None:
        self.backend = None
        self.message.setText(message)
        self.message.show()
        log.info("%s", message)

    @property
    def available(self) -> bool:
        return self.backend is not None

    # -- content --------------------------------------------------------------
    def set_surfaces(self, surfaces: dict[int, Any], table: LabelTable, hidden: frozenset[int],
                     bounds: tuple[float, ...], reset: bool = False) -> None:
        """Show ``surfaces`` (label value -> vtkPolyData) in ``table`` colours."""
        if not self.available:
            return
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        for actor in self.actors.values():
            self.renderer.RemoveActor(actor)
        self.actors = {}
        for value, poly in surfaces.items():
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(poly)
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            self.renderer.AddActor(actor)
            self.actors[value] = actor
        self._set_outline(bounds)
        self.set_appearance(table, hidden, render=False)
        if reset:
            self.reset_camera(render=False)
        self.render()

    def set_lungs(self, poly: Any, render: bool = True) -> None:
        """The lungs as a faint translucent surface around the findings (``None`` removes it)."""
        if not self.available:
            return
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        if self.lung_actor is not None:
            self.renderer.RemoveActor(self.lung_actor)
            self.lung_actor = None
        if poly is not None and poly.GetNumberOfPoints():
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(poly)
            mapper.ScalarVisibilityOff()
            self.lung_actor = vtkActor()
            self.lung_actor.SetMapper(mapper)
            prop = self.lung_actor.GetProperty()
            prop.SetColor(0.75, 0.85, 1.0)
            prop.SetOpacity(0.12)
            prop.SetSpecular(0.0)
            self.lung_actor.PickableOff()
            self.renderer.AddActor(self.lung_actor)
        if render:
            self.render()

    def set_appearance(self, table: LabelTable, hidden: frozenset[int], render: bool = True) -> None:
        """Colours and visibility of the surfaces (no rebuild)."""
        for value, actor in self.actors.items():
            try:
                r, g, b = table[value].color
            except KeyError:
                r, g, b = (200, 200, 200)
            prop = actor.GetProperty()
            prop.SetColor(r / 255.0, g / 255.0, b / 255.0)
            prop.SetSpecular(0.2)
            actor.SetVisibility(value not in hidden)
        if render:
            self.render()

    def _set_outline(self, bounds: tuple[float, ...]) -> None:
        from vtkmodules.vtkFiltersSources import vtkOutlineSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        if getattr(self, "_outline", None) is not None:
            self.renderer.RemoveActor(self._outline)
        src = vtkOutlineSource()
        src.SetBounds(*bounds)
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(src.GetOutputPort())
        self._outline = vtkActor()
        self._outline.SetMapper(mapper)
        self._outline.GetProperty().SetColor(0.45, 0.45, 0.5)
        self.renderer.AddActor(self._outline)

    def reset_camera(self, render: bool = True) -> None:
        """Look from anterior (-y) with superior (+z) up: patient right on the screen's left."""
        if not self.available:
            return
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(0, 0, 0)
        cam.SetPosition(0, -1, 0)
        cam.SetViewUp(0, 0, 1)
        self.renderer.ResetCamera()
        if render:
            self.render()

    # -- rendering ------------------------------------------------------------
    def render(self) -> None:
        if not self.available or not self.isVisible():
            return
        if self.backend == "interactive":
            self.render_window.Render()
            return
        w, h = max(self.canvas.width(), 64), max(self.canvas.height(), 64)
        self.render_window.SetSize(w, h)
        self.render_window.Render()
        self.canvas.setPixmap(QPixmap.fromImage(self.image()))

    def image(self) -> QImage:
        """The last frame as a QImage (image back-end)."""
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

        grab = vtkWindowToImageFilter()
        grab.SetInput(self.render_window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        out = grab.GetOutput()
        w, h, _ = out.GetDimensions()
        rgb = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, 3)[::-1]
        rgb = np.ascontiguousarray(rgb)
        return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self.render()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.backend == "image":
            self.render()

    # -- image back-end interaction ---------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.backend != "image" or self._drag is None:
            return
        pos = event.position().toPoint()
        d = pos - self._drag
        self._drag = pos
        cam = self.renderer.GetActiveCamera()
        cam.Azimuth(-d.x() * 0.5)
        cam.Elevation(d.y() * 0.5)
        cam.OrthogonalizeViewUp()
        self.renderer.ResetCameraClippingRange()
        self.render()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag = None

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self.backend != "image":
            return
        self.renderer.GetActiveCamera().Dolly(1.1 ** (event.angleDelta().y() / 120.0))
        self.renderer.ResetCameraClippingRange()
        self.render()
