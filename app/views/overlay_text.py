"""Text drawn over a slice view in screen pixels: corner captions and orientation letters."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QGraphicsSimpleTextItem


class Caption(QGraphicsRectItem):
    """Text on a translucent dark box, anchored to a point of its parent item.

    ``anchor`` is ``(ax, ay)`` in 0..1: (0, 0) puts the box's top-left corner at the
    anchor point, (0.5, 0) centres it horizontally below it, (1, 1) puts its
    bottom-right there.
    """

    def __init__(self, parent: QGraphicsItem, anchor: tuple[float, float], point_size: int = 11,
                 bold: bool = False, color: str = "#f0f0f0") -> None:
        super().__init__(parent)
        self._anchor = anchor
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(QColor(0, 0, 0, 130)))
        self.setZValue(1000)
        self._text = QGraphicsSimpleTextItem(self)
        font = QFont()
        font.setPointSize(point_size)
        font.setBold(bold)
        self._text.setFont(font)
        self._text.setBrush(QBrush(QColor(color)))
        self._pos = QPointF(0, 0)
        #: called after the caption changed size or place (the view's letters make room for it)
        self.after_layout: Optional[Callable[[], None]] = None

    def text(self) -> str:
        return self._text.text()

    def set_text(self, text: str) -> None:
        if text != self._text.text():
            self._text.setText(text)
            self._layout()
        self.setVisible(bool(text))

    def place(self, point: QPointF) -> None:
        """Anchor the caption at ``point`` (parent coordinates)."""
        self._pos = QPointF(point)
        self._layout()

    def _layout(self) -> None:
        br = self._text.boundingRect()
        pad = 3.0
        w, h = br.width() + 2 * pad, br.height() + 2 * pad
        self.setRect(QRectF(0, 0, w, h))
        self._text.setPos(pad, pad)
        self.setPos(self._pos.x() - self._anchor[0] * w, self._pos.y() - self._anchor[1] * h)
        if self.after_layout is not None:
            self.after_layout()


class ViewCaptions:
    """The four orientation letters and three corner captions of a slice view.

    Corners: ``top_left`` (plane and slice), ``bottom_left`` (window/level),
    ``top_right`` (free, e.g. zoom or tool hints).
    """

    MARGIN = 6.0

    def __init__(self, parent: QGraphicsItem) -> None:
        self._parent = parent
        self.letters = {edge: Caption(parent, anchor, point_size=13, bold=True, color="#ffd27f")
                        for edge, anchor in (("top", (0.5, 0.0)), ("bottom", (0.5, 1.0)),
                                             ("left", (0.0, 0.5)), ("right", (1.0, 0.5)))}
        self.top_left = Caption(parent, (0.0, 0.0))
        self.bottom_left = Caption(parent, (0.0, 1.0))
        self.top_right = Caption(parent, (1.0, 0.0))
        self._rect: Optional[QRectF] = None
        for corner in (self.top_left, self.bottom_left):
            corner.after_layout = self._place_letters

    def set_letters(self, letters: Optional[dict[str, str]]) -> None:
        for edge, item in self.letters.items():
            item.set_text(letters[edge] if letters else "")

    def relayout(self, rect: QRectF) -> None:
        """Place every caption inside ``rect`` (the view's area in parent coordinates)."""
        m = self.MARGIN
        self._rect = QRectF(rect)
        self.top_left.place(QPointF(rect.left() + m, rect.top() + m))
        self.bottom_left.place(QPointF(rect.left() + m, rect.bottom() - m))
        self.top_right.place(QPointF(rect.right() - m, rect.top() + m))
        self._place_letters()

    def _place_letters(self) -> None:
        """The letters at the middle of each edge; the top and bottom ones move right of a corner caption that
        reaches the middle (a long slice caption covered the "S" of a sagittal view)."""
        rect = self._rect
        if rect is None:
            return
        m = self.MARGIN
        cx, cy = rect.center().x(), rect.center().y()
        for edge, corner, y in (("top", self.top_left, rect.top() + m), ("bottom", self.bottom_left, rect.bottom() - m)):
            letter = self.letters[edge]
            half = letter.rect().width() / 2.0
            x = cx
            if corner.isVisible() and corner.text():
                x = max(cx, corner.pos().x() + corner.rect().width() + m + half)
                if x > rect.right() - m - half:  # no room beside it: above or below it, in the middle
                    x = cx
                    y = corner.pos().y() + corner.rect().height() + m if edge == "top" else corner.pos().y() - m
            letter.place(QPointF(x, y))
        self.letters["left"].place(QPointF(rect.left() + m, cy))
        self.letters["right"].place(QPointF(rect.right() - m, cy))
