"""What a PACS search asks for and what it answers: :class:`StudyQuery`, :class:`StudyRecord`, :class:`SeriesRecord`.

QIDO-RS answers in the DICOM JSON model (``{"0020000D": {"vr": "UI", "Value": [...]}}``);
:meth:`StudyRecord.from_qido` and :meth:`SeriesRecord.from_qido` turn one answer into
plain typed fields that a table, a CLI line or JSON can show.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .errors import PacsError

__all__ = ["StudyQuery", "StudyRecord", "SeriesRecord", "parse_date_range", "check_uid"]

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

#: QIDO attributes asked for besides the defaults, so a study browser can show them
STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances", "AccessionNumber", "StudyTime")
SERIES_FIELDS = ("SeriesDescription", "SeriesNumber", "Modality", "NumberOfSeriesRelatedInstances",
                 "SeriesDate", "BodyPartExamined")


def check_uid(uid: str, what: str = "UID") -> str:
    """``uid`` if it is a valid DICOM UID (digits and dots, at most 64 characters).

    UIDs become folder and file names of the cache, so a server cannot make
    LungLens write outside it.

    Raises
    ------
    PacsError
        ``uid`` is not a DICOM UID.
    """
    uid = str(uid).strip()
    if not uid or len(uid) > 64 or not _UID.match(uid):
        raise PacsError(f"{uid[:80]!r} is not a valid {what}: a DICOM UID is digits and dots "
                        "(e.g. 1.2.840.113619.2.55.3), at most 64 characters. Copy it from `pacs find`.")
    return uid


def _date(text: str) -> _dt.date:
    text = text.strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise PacsError(f"{text!r} is not a date: write YYYY-MM-DD or YYYYMMDD.")


def parse_date_range(text: str) -> tuple[Optional[_dt.date], Optional[_dt.date]]:
    """A study-date filter from text: one day, or a range with ``..`` (either end open).

    ``2020-03-01``, ``20200301``, ``2020-03-01..2020-06-30``, ``2020-03-01..``,
    ``..2020-06-30`` and the DICOM form ``20200301-20200630`` are accepted.

    Raises
    ------
    PacsError
        The text is not a date or range, or the range ends before it starts.
    """
    text = text.strip()
    if ".." in text:
        lo, _, hi = text.partition("..")
    elif re.fullmatch(r"\d{8}?-\d{8}?|\d{8}-|-\d{8}", text):
        lo, _, hi = text.partition("-")
    else:
        day = _date(text)
        return day, day
    start = _date(lo) if lo.strip() else None
    stop = _date(hi) if hi.strip() else None
    if start is None and stop is None:
        raise PacsError(f"{text!r} is an empty date range: give at least one end, e.g. 2020-03-01..")
    if start and stop and stop < start:
        raise PacsError(f"The date range {text!r} ends before it starts.")
    return start, stop


@dataclass(frozen=True)
class StudyQuery:
    """Filters of a study search; empty fields do not filter.

    Parameters
    ----------
    patient
        Patient name or ID: studies matching either (two searches, merged).
    patient_name
        Matched case-insensitively from the start of the name (DICOM ``Family^Given``)
        unless it holds ``*`` or ``?`` wildcards.
    patient_id
        Exact, unless it holds wildcards.
    date_from, date_to
        Study date range, both ends included; either may be open.
    modality
        A modality in the study, e.g. ``CT``.
    accession
        Accession number (exact).
    limit
        At most this many studies (the QIDO-RS page size).
    offset
        Skip this many matches first (QIDO-RS paging: the next page starts at
        ``offset + limit``).
    """

    patient: str = ""
    patient_name: str = ""
    patient_id: str = ""
    date_from: Optional[_dt.date] = None
    date_to: Optional[_dt.date] = None
    modality: str = ""
    accession: str = ""
    limit: int = 100
    offset: int = 0

    def next_page(self) -> "StudyQuery":
        """The same search, one page further (``offset + limit``)."""
        from dataclasses import replace

        return replace(self, offset=self.offset + max(self.limit, 0))

    def filters(self) -> list[dict[str, str]]:
        """The QIDO-RS search parameters: one set per search (two when ``patient`` is set)."""
        base = self._filters()
        text = self.patient.strip()
        if not text:
            return [base]
        by_name = StudyQuery(patient_name=text)._filters()
        by_id = StudyQuery(patient_id=text if any(c in text for c in "*?") else text)._filters()
        return [{**base, **by_name}, {**base, **by_id}]

    def _filters(self) -> dict[str, str]:
        out: dict[str, str] = {}
        name = self.patient_name.strip()
        if name:
            out["PatientName"] = name if any(c in name for c in "*?") else name + "*"
        if self.patient_id.strip():
            out["PatientID"] = self.patient_id.strip()
        if self.date_from or self.date_to:
            lo = self.date_from.strftime("%Y%m%d") if self.date_from else ""
            hi = self.date_to.strftime("%Y%m%d") if self.date_to else ""
            out["StudyDate"] = lo if lo == hi else f"{lo}-{hi}"
        if self.modality.strip():
            out["ModalitiesInStudy"] = self.modality.strip().upper()
        if self.accession.strip():
            out["AccessionNumber"] = self.accession.strip()
        return out


def _first(item: dict[str, Any], tag: str, default: Any = "") -> Any:
    values = item.get(tag, {}).get("Value") or []
    if not values:
        return default
    value = values[0]
    if isinstance(value, dict):  # person name: {"Alphabetic": "..."}
        return str(value.get("Alphabetic", ""))
    return value


def _all(item: dict[str, Any], tag: str) -> tuple[str, ...]:
    return tuple(str(v) for v in item.get(tag, {}).get("Value") or [])


def _int(item: dict[str, Any], tag: str) -> Optional[int]:
    value = _first(item, tag, None)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _iso_date(value: str) -> str:
    value = str(value)
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if re.fullmatch(r"\d{8}", value) else value


@dataclass
class SeriesRecord:
    """One series of a study, as a QIDO-RS series search describes it."""

    study_uid: str
    series_uid: str
    modality: str = ""
    number: Optional[int] = None
    description: str = ""
    date: str = ""
    body_part: str = ""
    n_instances: Optional[int] = None

    @classmethod
    def from_qido(cls, item: dict[str, Any], study_uid: str = "") -> "SeriesRecord":
        return cls(study_uid=str(_first(item, "0020000D", study_uid)),
                   series_uid=str(_first(item, "0020000E")),
                   modality=str(_first(item, "00080060")),
                   number=_int(item, "00200011"),
                   description=str(_first(item, "0008103E")),
                   date=_iso_date(_first(item, "00080021")),
                   body_part=str(_first(item, "00180015")),
                   n_instances=_int(item, "00201209"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudyRecord:
    """One study, as a QIDO-RS study search describes it, with its series once asked for."""

    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    date: str = ""
    time: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    n_series: Optional[int] = None
    n_instances: Optional[int] = None
    series: list[SeriesRecord] = field(default_factory=list)

    @classmethod
    def from_qido(cls, item: dict[str, Any]) -> "StudyRecord":
        return cls(study_uid=str(_first(item, "0020000D")),
                   patient_name=str(_first(item, "00100010")),
                   patient_id=str(_first(item, "00100020")),
                   date=_iso_date(_first(item, "00080020")),
                   time=str(_first(item, "00080030")),
                   description=str(_first(item, "00081030")),
                   accession=str(_first(item, "00080050")),
                   modalities=_all(item, "00080061"),
                   n_series=_int(item, "00201206"),
                   n_instances=_int(item, "00201208"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        return d
