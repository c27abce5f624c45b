"""De-identification: identifier strings of a series, scrubbed text and pseudonyms, applied to file names,
case ids and the sidecar by :mod:`~ctbench.data.dicom.outputs`.

The sidecar is built from an allow-list of acquisition facts (no names, IDs, dates, institutions,
stations, device serials, dates or UIDs; DICOM PS3.15 Annex E lists what counts as identifying). Any text
that still contains one of the series' identifier values as a word (person-name parts at any length, other
values whole; each value of a multi-valued tag such as ``OtherPatientIDs`` on its own), or a
date-like string in any common format (``19611231``, ``1961-12-31``, ``31.12.1961``, ``12/31/61``,
``31 Dec 1961``), is replaced by ``[removed]``; the same check guards file names and case ids. Paths are
not written; console lines name paths with their identifying parts redacted (:func:`redact`). ``keep_uids`` adds the Study/Series/FrameOfReference UIDs after scrubbing, nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

#: header keywords whose values are patient/site identifiers: never written, and any output text
#: containing one of their values is scrubbed
IDENTIFIER_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "IssuerOfPatientID", "MedicalRecordLocator", "AccessionNumber", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician",
    "StationName", "DeviceSerialNumber", "StudyID", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "IrradiationEventUID",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "AcquisitionDateTime", "InstanceCreationDate",
)
#: keywords whose value is a person name: the value and every part (family, given, middle name) are
#: identifiers at any length; other values count whole from 3 characters (a StudyID "1" would remove
#: every text with the word 1), their parts (address, institution words) from 4
PERSON_NAME_KEYWORDS = {"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                        "ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
                        "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician"}
REMOVED = "[removed]"
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
#: dates written as digits (year first, day first, month first) or with a month name and a 4-digit year
DATE_LIKE = re.compile(
    r"(?<![\d.])(?:(?:19|20)\d{2}(?P<a>[-./]?)(?:0[1-9]|1[0-2])(?P=a)(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])(?P<b>[-./])(?:0?[1-9]|1[0-2])(?P=b)(?:19|20)?\d{2}"
    r"|(?:0?[1-9]|1[0-2])(?P<c>[-./])(?:0?[1-9]|[12]\d|3[01])(?P=c)(?:19|20)?\d{2})(?!\d|\.\d)"
    rf"|\b(?:\d{{1,2}}(?:st|nd|rd|th)?[\s-]+)?{_MONTH}[\s,-]+(?:\d{{1,2}}(?:st|nd|rd|th)?,?[\s-]+)?(?:19|20)\d{{2}}\b",
    re.IGNORECASE)


def tag_values(ds: Dataset, keyword: str) -> list[str]:
    """Each value of an element as stripped text: a multi-valued element (``A\\B``) gives ``["A", "B"]``."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed element must not stop the walk
        return []
    if value is None:
        return []
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    return [part.strip() for item in items for part in str(item).split("\\") if part.strip()]


def identifier_strings(headers: Iterable[Dataset]) -> set[str]:
    """Identifier values found in ``headers`` (each value of a multi-valued tag, whole and its word parts),
    upper case."""
    found: set[str] = set()
    for ds in headers:
        for keyword in IDENTIFIER_KEYWORDS:
            is_name = keyword in PERSON_NAME_KEYWORDS
            for value in tag_values(ds, keyword):
                if is_name or len(value) >= 3:
                    found.add(value.upper())
                shortest = 1 if is_name else 4
                found.update(part.upper() for part in re.split(r"[\^\s,=\\]+", value) if len(part) >= shortest)
    return found


def _identifier_pattern(ident: str) -> str:
    return rf"(?<![A-Z0-9]){re.escape(ident)}(?![A-Z0-9])"


def scrub_text(text: str, identifiers: set[str]) -> str:
    """``text`` unless it contains one of ``identifiers`` as a word (case-insensitive) or a date-like string,
    else ``[removed]``.

    A word boundary is any character other than a letter or digit (``_``, ``^``, space, punctuation).
    """
    if DATE_LIKE.search(text):
        return REMOVED
    upper = text.upper()
    for ident in identifiers:
        if ident in upper and re.search(_identifier_pattern(ident), upper):
            return REMOVED
    return text


def redact(text: str, identifiers: set[str]) -> str:
    """``text`` with each identifier word and each date-like string replaced by ``[removed]`` (for console
    lines that must keep the rest, e.g. a path)."""
    text = DATE_LIKE.sub(REMOVED, text)
    for ident in sorted(identifiers, key=len, reverse=True):
        if ident in text.upper():
            text = re.sub(_identifier_pattern(ident), REMOVED, text, flags=re.IGNORECASE)
    return text


def scrub(value: Any, identifiers: set[str]) -> Any:
    """``value`` (text, list or dict, recursively) with every text that holds an identifier removed."""
    if isinstance(value, str):
        return scrub_text(value, identifiers)
    if isinstance(value, list):
        return [scrub(v, identifiers) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, identifiers) for k, v in value.items()}
    return value


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a file-name part: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:limit].rstrip("_")


def pseudonym(name: str) -> str:
    """``dicom_<12 hex>``: a stable stand-in for a folder name that holds an identifier (SHA-256 of the name).

    A pseudonym, not anonymisation: whoever can guess the name can compute the same value.
    """
    return "dicom_" + hashlib.sha256(name.encode()).hexdigest()[:12]


def pseudonym_labels(labels: dict[str, Path], link_dir: Path) -> dict[str, Path]:
    """``{pseudonym(case): link}`` for every label: a symbolic link in ``link_dir`` named after the pseudonym.

    A label named after a series folder whose name holds an identifier then pairs with that folder's case,
    and every path ctbench records (caches, reports) names the pseudonym, not the identifier.
    """
    link_dir.mkdir(parents=True, exist_ok=True)
    links = {}
    for case, path in labels.items():
        link = link_dir / f"{pseudonym(case)}.nii.gz"
        if not link.is_symlink() or os.readlink(link) != str(path):
            link.unlink(missing_ok=True)
            link.symlink_to(path)
        links[pseudonym(case)] = link
    return links
