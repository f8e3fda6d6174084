"""The PDF layout of a report (reportlab): header, tables, severity, models, key images."""

from __future__ import annotations

import io
from typing import Any, Optional, Sequence

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table,
                                TableStyle)

from ..labels import DEFAULT_TABLE
from .images import KeyImage
from .numbers import shown
from ..anatomy.lungs import ZONES

_ACCENT = colors.HexColor("#1f4e79")
_GRID = colors.HexColor("#c8d1dc")
_HEAD_BG = colors.HexColor("#e8eef5")
_ZONE_NAMES = {"right_upper": "Right upper", "right_middle": "Right middle", "right_lower": "Right lower",
               "left_upper": "Left upper", "left_middle": "Left middle", "left_lower": "Left lower"}
_FIELD_NAMES = {"patient_name": "Patient", "patient_id": "Patient ID", "patient_birth_date": "Birth date",
                "patient_sex": "Sex", "patient_age": "Age", "study_date": "Study date",
                "accession_number": "Accession", "institution_name": "Institution", "study_description": "Study",
                "series_description": "Series", "series_number": "Series no.", "modality": "Modality",
                "manufacturer": "Manufacturer", "convolution_kernel": "Kernel",
                "slice_thickness": "Slice thickness (mm)", "study_instance_uid": "Study UID",
                "series_instance_uid": "Series UID"}


def _f(v: Optional[float], digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _field_text(key: str, value: Any) -> str:
    """DICOM-style values made readable: 'DOE^JANE' -> 'DOE JANE', '077Y' -> '77 years'."""
    text = str(value)
    if key == "patient_name":
        return text.replace("^", " ").strip()
    if key == "patient_age" and len(text) == 4 and text[:3].isdigit() and text[3] in "DWMY":
        unit = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}[text[3]]
        return f"{int(text[:3])} {unit}"
    if key in ("study_date", "patient_birth_date") and len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _table(rows: list[list[Any]], widths: Sequence[float], header: bool = True, align_right_from: int = 1) -> Table:
    t = Table(rows, colWidths=widths, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 8.5),
             ("LINEBELOW", (0, 0), (-1, -1), 0.25, _GRID),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
             ("ALIGN", (align_right_from, 0), (-1, -1), "RIGHT")]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5), ("BACKGROUND", (0, 0), (-1, 0), _HEAD_BG),
                  ("LINEBELOW", (0, 0), (-1, 0), 0.8, _ACCENT)]
    t.setStyle(TableStyle(style))
    return t


def _swatch(key: str) -> str:
    if key == "total":
        return ""
    r, g, b = DEFAULT_TABLE.by_key(key).color
    return f'<font color="#{r:02x}{g:02x}{b:02x}">&#9632;</font> '


def pdf_bytes(doc: dict[str, Any], images: Sequence[KeyImage]) -> bytes:
    """Lay out the report document and key images on A4 pages."""
    buf = io.BytesIO()
    styles = getSampleStyleSheet()
    h1 = ParagraphStyle("h1", parent=styles["Title"], alignment=TA_LEFT, fontSize=17, textColor=_ACCENT,
                        spaceAfter=2)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=11.5, textColor=_ACCENT, spaceBefore=8,
                        spaceAfter=3)
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=8.5, leading=11)
    small = ParagraphStyle("small", parent=body, fontSize=7.2, leading=9, textColor=colors.HexColor("#555555"))
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10)
    n = doc["numbers"]
    known = n["spacing_known"]
    story: list[Any] = []
    story.append(Paragraph(doc["title"], h1))
    story.append(Paragraph(f"LungLens {doc['lunglens_version']} &middot; generated {doc['generated']}"
                           + (" &middot; identifiers left out" if doc["anonymized"] else ""), small))
    story.append(Spacer(1, 4))

    # patient and series
    fields = [[_FIELD_NAMES.get(k, k), _field_text(k, v)] for k, v in doc["patient"].items()]
    scan = doc["scan"]
    sp = ", ".join(f"{s:.3g}" for s in scan["spacing_mm"]) + (" mm" if scan["spacing_known"] else " (unknown)")
    fields += [["Grid (z, y, x)", " x ".join(str(s) for s in scan["shape"])], ["Spacing (z, y, x)", sp],
               ["Intensities", ("may not be HU (no air in the image): HU figures not valid"
                                if scan.get("hu_doubtful") else "Hounsfield units")
                if scan["is_hu"] else "8-bit image (no HU)"]]
    half = (len(fields) + 1) // 2
    left, right = fields[:half], fields[half:] + [["", ""]] * (2 * half - len(fields))
    rows = [[a[0], Paragraph(a[1], cell), b[0], Paragraph(b[1], cell)] for a, b in zip(left, right)]
    t = Table(rows, colWidths=[30 * mm, 55 * mm, 34 * mm, 55 * mm], hAlign="LEFT")
    t.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 8.5),
                           ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 8.5),
                           ("FONT", (2, 0), (2, -1), "Helvetica-Bold", 8.5),
                           ("TEXTCOLOR", (0, 0), (0, -1), _ACCENT), ("TEXTCOLOR", (2, 0), (2, -1), _ACCENT),
                           ("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    story.append(t)

    # findings
    story.append(Paragraph("Findings", h2))
    ml_head = "Volume (mL)" if known else "Volume (voxels)"
    rows = [["Finding", ml_head, "% both lungs", "% left", "% right", "Mean HU", "HU p10 / p50 / p90"]]
    for key in ("ggo", "consolidation", "effusion", "total"):
        f = n["findings"][key]
        vol = shown(f["ml"], f["voxels"]) if known else str(f["voxels"])  # no "0.0" for a finding that is there
        hu = (f"{_f(f['hu_p10'], 0)} / {_f(f['hu_p50'], 0)} / {_f(f['hu_p90'], 0)}"
              if f["hu_mean"] is not None else "n/a")
        rows.append([Paragraph(_swatch(key) + f["name"], cell), vol, shown(f["percent_of_lungs"], f["voxels"]),
                     shown(f["percent_left"], f["voxels_left"]), shown(f["percent_right"], f["voxels_right"]),
                     _f(f["hu_mean"], 0), hu])
    story.append(_table(rows, [50 * mm, 21 * mm, 22 * mm, 15 * mm, 16 * mm, 17 * mm, 33 * mm]))
    lung = n["lungs"]
    lv = (lambda k: _f(lung[k]["ml"]) + " mL") if known else (lambda k: f"{lung[k]['voxels']} voxels")
    story.append(Spacer(1, 3))
    if n["has_lungs"]:
        story.append(Paragraph(f"Lung volume: left {lv('left')}, right {lv('right')}, both {lv('both')}"
                               + (f" (lung masks: {doc['lungs']['method']})" if doc["lungs"]["method"] else ""),
                               body))
    else:  # no lung masks: a volume of 0 mL would be a number, not an absence
        story.append(Paragraph("Lung volume: n/a (no lungs were found)", body))
    story.append(Paragraph("Effusion lies outside the lung: its % is relative to the lung volume. "
                           "Findings outside the lung masks count as lung; effusion never does.", small))

    # zones and severity
    if n["has_lungs"] and n["severity"]:
        story.append(Paragraph("Zones and severity", h2))
        sev = {s["key"]: s for s in n["severity"]}
        rows = [["Zone", "Lung (mL)" if known else "Lung (voxels)", "% GGO", "% consolidation", "% involved",
                 "Pan 0-5", "Chung 0-4"]]
        for z in ZONES:
            lz = lung[z]
            rows.append([_ZONE_NAMES[z], _f(lz["ml"]) if known else str(lz["voxels"]),
                         *(shown(n["findings"][k]["zones"][z]["percent"], n["findings"][k]["zones"][z]["voxels"])
                           for k in ("ggo", "consolidation", "total")),
                         str(sev["pan_zones"]["per_zone"][z]), str(sev["chung_zones"]["per_zone"][z])])
        rows.append(["Total", "", "", "", "", f"{sev['pan_zones']['total']} / {sev['pan_zones']['maximum']}",
                     f"{sev['chung_zones']['total']} / {sev['chung_zones']['maximum']}"])
        t = _table(rows, [30 * mm, 22 * mm, 18 * mm, 25 * mm, 20 * mm, 20 * mm, 20 * mm])
        t.setStyle(TableStyle([("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 8.5),
                               ("LINEABOVE", (0, -1), (-1, -1), 0.8, _ACCENT)]))
        story.append(t)
        story.append(Spacer(1, 3))
        p = sev["pan_zones"]
        story.append(Paragraph(f"<b>Severity score: {p['total']} of {p['maximum']}</b> (Pan et al. scale, 6 zones). "
                               + p["note"], body))
        story.append(Paragraph("Pan: " + p["citation"] + ". Chung: " + sev["chung_zones"]["citation"] + ".", small))

    # provenance
    story.append(Paragraph("Segmentation", h2))
    models = doc.get("models") or {}
    lines = []
    for role, m in models.items():
        if isinstance(m, dict):
            name = m.get("name") or role
            version = m.get("version") or (m.get("sha256") or "")[:12]
            lines.append(f"{role}: {name}" + (f" (version {version})" if version else ""))
        elif m:
            lines.append(f"{role}: {m}")
    story.append(Paragraph("Models: " + ("; ".join(lines) if lines else "none recorded"), body))
    edited = doc["labels"]["edited_by_person"]
    said = "unknown</b> (the label file does not record it)" if edited is None else ("yes" if edited else "no") + "</b>"
    story.append(Paragraph("Labels edited by a person: <b>" + said, body))
    rsna = doc.get("rsna_category")
    if rsna:
        deciding = "; ".join(rsna.get("deciding_features", [])[:4])
        story.append(Paragraph(f"RSNA category (derived from the segmented findings): <b>{rsna['category']}</b>"
                               + (f" ({deciding})" if deciding else "") + ". Nodules, cavitation and septal "
                               "thickening are not assessed; a reporting aid, not a diagnosis.", body))
    covid = doc.get("covid")
    if covid and covid.get("show_in_app"):
        story.append(Paragraph(f"COVID-19 likelihood: {100 * covid['probability']:.0f} % ({covid['caveat']})", body))
    probs = doc.get("finding_probabilities")
    if probs:
        story.append(Paragraph("Finding probabilities: " + ", ".join(
            f"{DEFAULT_TABLE.by_key(k).name} {100 * v:.0f} %" for k, v in probs.items() if v is not None), body))
    for note in doc.get("notes", []) + list(doc["lungs"].get("warnings", [])):
        story.append(Paragraph(note, small))

    # key images, two per row
    if images:
        cells = []
        width = 80 * mm
        for im in images:
            h = width * im.height / im.width
            if h > 80 * mm:
                h = 80 * mm
            w = h * im.width / im.height
            cells.append([Image(io.BytesIO(im.png), width=w, height=h), Paragraph(im.title, small)])
        rows = []
        for i in range(0, len(cells), 2):
            pair = cells[i:i + 2] + ([["", ""]] if len(cells[i:i + 2]) == 1 else [])
            rows.append([pair[0][0], pair[1][0]])
            rows.append([pair[0][1], pair[1][1]])
        t = Table(rows, colWidths=[88 * mm, 88 * mm], hAlign="LEFT")
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                               ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
        story.append(KeepTogether([Paragraph("Key images", h2), t]))

    def footer(canvas, _doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#777777"))
        canvas.drawString(18 * mm, 10 * mm, "LungLens research software. Check the segmentation before relying "
                                            "on these numbers.")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {_doc.page}")
        canvas.restoreState()

    pdf = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=15 * mm,
                            bottomMargin=16 * mm, title=doc["title"], author="LungLens",
                            subject="Chest CT quantification")
    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
