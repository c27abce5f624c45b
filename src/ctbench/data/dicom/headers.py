"""Safe readers of DICOM header values: a malformed element gives ``None``/``""``, never an exception."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MULTIFRAME_CT = {"1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT", "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT"}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


def relative(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies below it (messages never show the full tree)."""
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def one_line(err: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters)."""
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def tag_str(ds: Dataset | None, keyword: str) -> str:
    """The element's value as stripped text, ``""`` when absent or unreadable."""
    if ds is None:
        return ""
    try:
        value = ds.get(keyword, "")
    except Exception:  # noqa: BLE001 - a malformed element must not stop the walk
        return ""
    if value is None:
        return ""
    return str(value).strip()


def tag_floats(ds: Dataset, keyword: str, n: int) -> np.ndarray | None:
    """The element's ``n`` finite numbers, else ``None``."""
    try:
        value = ds.get(keyword)
        if value is None:
            return None
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        arr = np.asarray([float(v) for v in values], dtype=float)
    except Exception:  # noqa: BLE001
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def tag_float(ds: Dataset, keyword: str) -> float | None:
    v = tag_floats(ds, keyword, 1)
    return None if v is None else float(v[0])


def tag_int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:  # noqa: BLE001
        return None


def sop_class(ds: Dataset) -> str:
    """SOPClassUID, or the file meta's MediaStorageSOPClassUID when the dataset lacks it."""
    uid = tag_str(ds, "SOPClassUID")
    if not uid and getattr(ds, "file_meta", None) is not None:
        uid = tag_str(ds.file_meta, "MediaStorageSOPClassUID")
    return uid


def transfer_syntax(ds: Dataset) -> str:
    """``"JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)"``-style name of the file's transfer syntax."""
    uid = tag_str(getattr(ds, "file_meta", None), "TransferSyntaxUID")
    if not uid:
        return "unknown"
    try:
        return f"{pydicom.uid.UID(uid).name} ({uid})"
    except Exception:  # noqa: BLE001
        return uid


def image_type(ds: Dataset) -> list[str]:
    """ImageType values in upper case (``["ORIGINAL", "PRIMARY", "AXIAL"]``)."""
    try:
        value = ds.get("ImageType")
    except Exception:  # noqa: BLE001
        return []
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip().upper() for v in value.split("\\")]
    return [str(v).strip().upper() for v in value]


def orientation(ds: Dataset) -> np.ndarray | None:
    return tag_floats(ds, "ImageOrientationPatient", 6)
