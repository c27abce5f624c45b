"""De-identification: identifier strings of a series, scrubbed text and pseudonyms, applied to file names,
case ids and the sidecar by :mod:`~ctbench.data.dicom.outputs`.

The sidecar is built from an allow-list of acquisition facts (no names, IDs, dates, institutions,
stations, device serials or UIDs; DICOM PS3.15 Annex E lists what counts as identifying). Any text that
still contains one of the series' identifier values as a word (person-name parts at any length, other
values whole) is replaced by ``[removed]``; the same check guards file names and case ids. Paths are
not written. ``keep_uids`` adds the Study/Series/FrameOfReference UIDs after scrubbing, nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from ctbench.data.dicom.headers import tag_str

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
)
#: keywords whose value is a person name: the value and every part (family, given, middle name) are
#: identifiers at any length; other values count whole from 3 characters (a StudyID "1" would remove
#: every text with the word 1), their parts (address, institution words) from 4
PERSON_NAME_KEYWORDS = {"PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                        "ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
                        "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician"}
REMOVED = "[removed]"
def identifier_strings(headers: Iterable[Dataset]) -> set[str]:
    """Identifier values found in ``headers`` (whole values and their word parts), upper case."""
    found: set[str] = set()
    for ds in headers:
        for keyword in IDENTIFIER_KEYWORDS:
            value = tag_str(ds, keyword)
            if not value:
                continue
            is_name = keyword in PERSON_NAME_KEYWORDS
            if is_name or len(value) >= 3:
                found.add(value.upper())
            shortest = 1 if is_name else 4
            found.update(part.upper() for part in re.split(r"[\^\s,=\\]+", value) if len(part) >= shortest)
    return found


def scrub_text(text: str, identifiers: set[str]) -> str:
    """``text`` unless it contains one of ``identifiers`` as a word (case-insensitive), else ``[removed]``.

    A word boundary is any character other than a letter or digit (``_``, ``^``, space, punctuation).
    """
    upper = text.upper()
    for ident in identifiers:
        if ident in upper and re.search(rf"(?<![A-Z0-9]){re.escape(ident)}(?![A-Z0-9])", upper):
            return REMOVED
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
