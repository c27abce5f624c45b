"""Fuzz (issue 12): seeded corruptions of the real NIfTI and DICOM files in ``tests/data/real`` through
``check-data``, ``score``, ``convert`` and ``predict``, each called in-process through the command's real entry
(:func:`ctbench.cli.main`, as the ``ctbench`` console script calls it).

For every call: no traceback (an exception escaping ``main`` or printed by Hydra), no hang (a time box per
call), no file written outside the call's output folder, and every input file byte-identical afterwards
(SHA-256 before and after). The kinds of corruption: truncation, bit flips, NIfTI/DICOM header fields out
of range, a wrong data type, huge dimensions and negative (or zero, non-finite) spacing. ``-s`` prints the
count of each error message the user saw.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import re
import resource
import shutil
import signal
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctbench.cli import main

pytestmark = pytest.mark.slow

REAL = Path(__file__).parent / "data" / "real"
CT = REAL / "totalseg-abdomen-ct" / "example_ct_sm.nii.gz"
SEG = REAL / "totalseg-abdomen-ct" / "example_seg.nii.gz"
SERIES = REAL / "pydicom-ct-tiny" / "CT5N_regular_5slices"
SEED = 20261201
N_NIFTI = 160  # corrupted NIfTI files: check-data and score each, predict every PREDICT_EVERY-th
N_DICOM = 80  # corrupted DICOM series: convert each, predict every PREDICT_EVERY-th
PREDICT_EVERY = 4
BATCH = 10  # check-data and score take a folder: BATCH corrupted cases per call
TIME_BOX_S = 90

Rng = np.random.Generator

# ------------------------------------------------------------------------------------------------ NIfTI


def _header(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw[:348], dtype=nib.nifti1.header_dtype).copy()


def _with_header(raw: bytes, hdr: np.ndarray) -> bytes:
    return hdr.tobytes() + raw[348:]


BAD_FLOATS = [0.0, -1.0, -3.0, float("nan"), float("inf"), -float("inf"), 1e30, 1e-30, 1e6]
#: (field, index or None, values): header fields set out of their range
HEADER_FIELDS = [
    ("dim", 0, [0, -1, 1, 2, 4, 7, 8, 255, -32768]),
    ("dim", 1, [0, -1, -32768, 1, 32767]),
    ("dim", 3, [0, -5, 32767, 1]),
    ("dim", 4, [0, -1, 3, 32767]),
    ("pixdim", 0, [0.0, -1.0, 5.0, float("nan")]),
    ("pixdim", 1, BAD_FLOATS),
    ("pixdim", 3, BAD_FLOATS),
    ("vox_offset", None, [0.0, -352.0, 1e12, float("nan"), 353.0, 100.0]),
    ("scl_slope", None, [0.0, float("nan"), float("inf"), 1e30, -1.0]),
    ("scl_inter", None, [float("nan"), float("inf"), 1e30]),
    ("bitpix", None, [0, 1, 7, 64, 255]),
    ("qform_code", None, [-1, 0, 3, 99]),
    ("sform_code", None, [-1, 0, 5, 99]),
    ("quatern_b", None, [2.0, float("nan"), -5.0]),
    ("srow_x", 0, [0.0, float("nan"), float("inf"), 1e30]),
    ("srow_y", 1, [0.0, float("nan"), 1e-30]),
    ("srow_z", 3, [float("nan"), 1e30]),
    ("sizeof_hdr", None, [0, 540, 12345]),
    ("magic", None, [b"n+2\0", b"\0\0\0\0", b"ni1\0"]),
]
#: NIfTI datatype codes with their bitpix (uint8 ... complex, RGB, float128)
DTYPES = [(2, 8), (4, 16), (8, 32), (16, 32), (32, 64), (64, 64), (128, 24), (256, 8), (512, 16), (768, 32),
          (1024, 64), (1280, 64), (1536, 128), (1792, 128), (2048, 256), (2304, 32), (0, 0), (3, 16), (9999, 16)]


def truncate(raw: bytes, rng: Rng) -> bytes:
    cut = int(rng.integers(0, 352)) if rng.random() < 0.3 else int(rng.integers(352, len(raw)))
    return raw[:cut]


def bit_flips(raw: bytes, rng: Rng) -> bytes:
    data = bytearray(raw)
    span = 352 if rng.random() < 0.7 else len(data)  # mostly the header, where a flip changes meaning
    for pos in rng.integers(0, span, size=int(rng.integers(1, 24))):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(data)


def header_field(raw: bytes, rng: Rng) -> bytes:
    hdr = _header(raw)
    for _ in range(int(rng.integers(1, 4))):
        field, index, values = HEADER_FIELDS[int(rng.integers(len(HEADER_FIELDS)))]
        value = values[int(rng.integers(len(values)))]
        if index is None:
            hdr[field] = value
        else:
            hdr[field][0][index] = value
    return _with_header(raw, hdr)


def wrong_dtype(raw: bytes, rng: Rng) -> bytes:
    hdr = _header(raw)
    code, bitpix = DTYPES[int(rng.integers(len(DTYPES)))]
    hdr["datatype"] = code
    if rng.random() < 0.7:
        hdr["bitpix"] = bitpix
    return _with_header(raw, hdr)


def huge_dims(raw: bytes, rng: Rng) -> bytes:
    hdr = _header(raw)
    for axis in rng.choice([1, 2, 3], size=int(rng.integers(1, 4)), replace=False):
        hdr["dim"][0][axis] = int(rng.choice([32767, 20000, 4096]))
    if rng.random() < 0.3:
        hdr["dim"][0][0] = 7
        hdr["dim"][0][4:8] = 32767
    return _with_header(raw, hdr)


def negative_spacing(raw: bytes, rng: Rng) -> bytes:
    hdr = _header(raw)
    for axis in rng.choice([1, 2, 3], size=int(rng.integers(1, 4)), replace=False):
        hdr["pixdim"][0][axis] = -abs(float(hdr["pixdim"][0][axis])) * float(rng.choice([1.0, 1e-6, 1e6]))
    if rng.random() < 0.5:  # the sform too: a mirrored, shrunken or degenerate axis
        row = ["srow_x", "srow_y", "srow_z"][int(rng.integers(3))]
        hdr[row][0][int(rng.integers(3))] *= float(rng.choice([-1.0, 0.0, -1e6, -1e-6]))
    return _with_header(raw, hdr)


NIFTI_CORRUPTIONS: dict[str, Callable[[bytes, Rng], bytes]] = {
    "truncated": truncate, "bit_flips": bit_flips, "header_field": header_field, "wrong_dtype": wrong_dtype,
    "huge_dims": huge_dims, "negative_spacing": negative_spacing}

# ------------------------------------------------------------------------------------------------ DICOM

#: (keyword, values): DICOM attributes set out of range (strings: written as is, unchecked)
DICOM_FIELDS = [
    ("Rows", [0, 1, 65535]), ("Columns", [0, 65535]), ("BitsAllocated", [0, 1, 7, 12, 64]),
    ("BitsStored", [0, 40]), ("HighBit", [99]), ("PixelRepresentation", [1, 2]), ("SamplesPerPixel", [0, 3]),
    ("PixelSpacing", [["-1", "-1"], ["0", "0"], ["nan", "1"], ["1e30", "1e30"], ["1"]]),
    ("SliceThickness", ["-5", "0", "nan"]),
    ("ImagePositionPatient", [["nan", "0", "0"], ["1e308", "0", "0"], ["0", "0"], ["0", "0", "0"]]),
    ("ImageOrientationPatient", [["0"] * 6, ["1", "0", "0", "1", "0", "0"], ["nan"] * 6, ["1", "0", "0"]]),
    ("RescaleSlope", ["0", "nan", "1e30", "-1"]), ("RescaleIntercept", ["nan", "1e308"]),
    ("NumberOfFrames", ["1000", "0", "-1"]), ("PhotometricInterpretation", ["RGB", "PALETTE COLOR", "YBR_FULL"]),
    ("Modality", ["MR", ""]), ("SeriesInstanceUID", ["1.2.3", ""]), ("InstanceNumber", ["-1", "99999999999"]),
]


def _dicom_bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def dicom_field(raw: bytes, rng: Rng) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    for _ in range(int(rng.integers(1, 3))):
        keyword, values = DICOM_FIELDS[int(rng.integers(len(DICOM_FIELDS)))]
        value = values[int(rng.integers(len(values)))]
        if keyword in ds:
            ds[keyword].value = value
        else:
            setattr(ds, keyword, value)
    return _dicom_bytes(ds)


def dicom_pixels(raw: bytes, rng: Rng) -> bytes:
    """Pixel data cut short or removed, declared in a transfer syntax it is not in, or no slice position."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    choice = int(rng.integers(4))
    if choice == 0:
        ds.PixelData = ds.PixelData[: int(rng.integers(0, len(ds.PixelData)))]
    elif choice == 1:
        del ds.PixelData
    elif choice == 2:  # same-length UIDs in the file meta: RLE, big endian, an unknown one; data unchanged
        explicit = b"1.2.840.10008.1.2.1"
        return raw.replace(explicit, str(rng.choice(["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.2",
                                                      "1.2.840.10008.1.2.9"])).encode(), 1)
    else:
        del ds.ImagePositionPatient
    return _dicom_bytes(ds)


def dicom_wrong_dtype(raw: bytes, rng: Rng) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = [(8, 8, 7), (32, 32, 31), (16, 12, 11), (8, 16, 15)][
        int(rng.integers(4))]
    ds.PixelRepresentation = int(rng.integers(2))
    return _dicom_bytes(ds)


def dicom_huge_dims(raw: bytes, rng: Rng) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    ds.Rows, ds.Columns = int(rng.choice([65535, 30000])), int(rng.choice([65535, 30000]))
    return _dicom_bytes(ds)


def dicom_negative_spacing(raw: bytes, rng: Rng) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    ds.PixelSpacing = [str(-float(rng.choice([0.5, 1e-6, 1e6]))), str(ds.PixelSpacing[1])]
    if rng.random() < 0.5:
        ds.SliceThickness = "-1"
    return _dicom_bytes(ds)


DICOM_CORRUPTIONS: dict[str, Callable[[bytes, Rng], bytes]] = {
    "truncated": lambda raw, rng: raw[: int(rng.integers(0, len(raw)))],
    "bit_flips": lambda raw, rng: bit_flips(raw, rng) if rng.random() < 0.5 else _flip_anywhere(raw, rng),
    "header_field": dicom_field, "pixel_data": dicom_pixels, "wrong_dtype": dicom_wrong_dtype,
    "huge_dims": dicom_huge_dims, "negative_spacing": dicom_negative_spacing}


def _flip_anywhere(raw: bytes, rng: Rng) -> bytes:
    data = bytearray(raw)
    for pos in rng.integers(0, len(data), size=int(rng.integers(1, 24))):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(data)


# ------------------------------------------------------------------------------------------------ harness


def _sha(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Hang(Exception):
    pass


@contextlib.contextmanager
def _time_box(seconds: int) -> Iterator[None]:
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


ERROR_LINE = re.compile(r"^ctbench: error: (.*)$", re.M)
#: the last cell of a problem-table row (check-data: case | file | problem; score: case | problem)
TABLE_ROW = re.compile(r"^│ \S+ +│ (?:\S+ +│ )?([^│]*?[a-z][^│]*?) +│$", re.M)
#: address-space limit while the fuzz runs, so that an allocation a header asks for fails instead of the machine
MEMORY_LIMIT_BYTES = 12 * 2**30


def _kind(message: str) -> str:
    """An error message without its file names and numbers, so that equal kinds count together."""
    text = re.sub(r"\S*/\S*|\S+\.(nii(\.gz)?|dcm)\b", "FILE", message)
    text = re.sub(r"\(.*?\)", "(...)", text)
    return re.sub(r"-?\d[\d.e+-]*", "N", text)[:110]


class Fuzz:
    """Runs commands on corrupted inputs and records every broken promise and every message seen."""

    def __init__(self, root: Path, capsys) -> None:
        self.root, self.capsys = root, capsys
        self.failures: list[str] = []
        self.messages: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def run(self, what: str, argv: list[str], inputs: Path, out: Path) -> None:
        before_inputs = _sha(inputs)
        outside_before = {p for p in self.root.rglob("*") if not p.is_relative_to(out)}
        self.capsys.readouterr()
        self.calls[argv[0]] += 1
        escaped = ""
        try:
            with _time_box(TIME_BOX_S):
                rc = main(argv)
        except SystemExit as stop:  # Hydra exits with the error's code after printing it
            rc = stop.code
        except Hang as err:
            rc, escaped = None, f"HANG {err}"
        except Exception:  # noqa: BLE001 - exactly what the fuzz looks for
            rc, escaped = None, traceback.format_exc(limit=-3)
        streams = self.capsys.readouterr()
        text = streams.out + streams.err
        for line in ERROR_LINE.findall(text):
            self.messages[f"{argv[0]}: {_kind(line)}"] += 1
        for message in TABLE_ROW.findall(text):  # the problem tables of check-data and score
            self.messages[f"{argv[0]} table: {_kind(message)}"] += 1
        if escaped or "Traceback" in text or "Error executing job" in text:
            tail = escaped or text[text.find("Traceback"):][-1500:]
            self.failures.append(f"{what}: {' '.join(argv[:2])} -> traceback:\n{tail}")
        elif "MemoryError" in text:  # caught here only because of the address-space limit below
            self.failures.append(f"{what}: {' '.join(argv[:2])} -> MemoryError (no limit: the machine runs out)")
        elif not isinstance(rc, int):
            self.failures.append(f"{what}: {' '.join(argv[:2])} -> exit status {rc!r}")
        if _sha(inputs) != before_inputs:
            self.failures.append(f"{what}: {argv[0]} changed an input file")
        written = {p for p in self.root.rglob("*") if not p.is_relative_to(out)} - outside_before
        if written:
            self.failures.append(f"{what}: {argv[0]} wrote outside its output folder: {sorted(map(str, written))[:3]}")


def _nifti_raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def _write_nifti(path: Path, raw: bytes, rng: Rng) -> Path:
    """``path.nii`` or (re-compressed, a third of the time) ``path.nii.gz``."""
    if rng.random() < 0.33:
        target = path.with_name(path.name + ".nii.gz")
        target.write_bytes(gzip.compress(raw, compresslevel=1))
    else:
        target = path.with_name(path.name + ".nii")
        target.write_bytes(raw)
    return target


@pytest.fixture(scope="module")
def checkpoint(trained_run) -> Path:
    return trained_run / "checkpoints" / "best.ckpt"


def test_corrupted_files_never_crash_hang_or_touch_inputs(tmp_path, monkeypatch, capsys, checkpoint):
    """At least 200 seeded corruptions (N_NIFTI NIfTI files + N_DICOM DICOM series) through the four commands."""
    real_before = _sha(REAL)
    monkeypatch.chdir(tmp_path)  # anything written relative to the working folder is seen as "outside"
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, hard))
    try:
        _fuzz(tmp_path, capsys, checkpoint, real_before)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _fuzz(tmp_path: Path, capsys, checkpoint: Path, real_before: dict[str, str]) -> None:
    rng = np.random.default_rng(SEED)
    fuzz = Fuzz(tmp_path, capsys)
    ckpt = shutil.copy(checkpoint, tmp_path / "model.ckpt")
    ct_raw, seg_raw = _nifti_raw(CT), _nifti_raw(SEG)
    kinds = list(NIFTI_CORRUPTIONS)
    made: Counter[str] = Counter()

    for start in range(0, N_NIFTI, BATCH):
        batch = tmp_path / f"nifti_{start:03d}"
        for sub in ("img", "lab", "truth"):
            (batch / "in" / sub).mkdir(parents=True)
        predict_inputs = []
        for i in range(start, start + BATCH):
            kind = kinds[i % len(kinds)]
            made[f"nifti {kind}"] += 1
            image_role = rng.random() < 0.5  # corrupt the image or the label of the case
            raw = NIFTI_CORRUPTIONS[kind](ct_raw if image_role else seg_raw, rng)
            name = f"c{i:03d}"
            image = _write_nifti(batch / "in" / "img" / name, raw if image_role else ct_raw, rng)
            label = _write_nifti(batch / "in" / "lab" / name, seg_raw if image_role else raw, rng)
            (batch / "in" / "truth" / f"{name}.nii.gz").write_bytes(SEG.read_bytes())
            if i % PREDICT_EVERY == 0:  # predict reads any NIfTI file: the corrupted one
                predict_inputs.append((f"nifti {kind} #{i}", image if image_role else label))
        out = batch / "out"
        fuzz.run(f"nifti batch {start}", ["check-data", "dataset=nifti", f"dataset.images={batch}/in/img/*",
                                          f"dataset.labels={batch}/in/lab/*", f"paths.root_dir={out}"],
                 batch / "in", out)
        fuzz.run(f"nifti batch {start}", ["score", str(batch / "in" / "lab"), str(batch / "in" / "truth"),
                                          "--labels", "1=spleen", "2=kidney_right", "--out", str(out / "score")],
                 batch / "in", out)
        for what, path in predict_inputs:
            run_out = out / f"predict_{path.parent.name}_{path.name.split('.')[0]}"
            fuzz.run(what, ["predict", f"ckpt_path={ckpt}", f"input={path}", f"output_dir={run_out}",
                            f"hydra.run.dir={run_out}/hydra", "progress_bar=false"], batch / "in", run_out)

    slices = sorted(SERIES.iterdir())
    dicom_kinds = list(DICOM_CORRUPTIONS)
    for i in range(N_DICOM):
        kind = dicom_kinds[i % len(dicom_kinds)]
        made[f"dicom {kind}"] += 1
        case = tmp_path / f"dicom_{i:03d}"
        series = case / "in" / "series"
        series.mkdir(parents=True)
        hit = set(rng.choice(len(slices), size=int(rng.integers(1, len(slices) + 1)), replace=False).tolist())
        for k, source in enumerate(slices):
            raw = source.read_bytes()
            (series / source.name).write_bytes(DICOM_CORRUPTIONS[kind](raw, rng) if k in hit else raw)
        out = case / "out"
        fuzz.run(f"dicom {kind} #{i}", ["convert", str(series), str(out / "nifti")], case / "in", out)
        if i % PREDICT_EVERY == 0:
            fuzz.run(f"dicom {kind} #{i}", ["predict", f"ckpt_path={ckpt}", f"input={series}", f"output_dir={out / 'p'}",
                                            f"hydra.run.dir={out}/hydra", "progress_bar=false"], case / "in", out)

    with capsys.disabled():
        print(f"\nfuzz: {sum(made.values())} corrupted inputs ({dict(made)}); calls {dict(fuzz.calls)}", file=sys.stderr)
        for message, n in fuzz.messages.most_common():
            print(f"{n:5d}  {message}", file=sys.stderr)
    assert _sha(REAL) == real_before
    assert sum(made.values()) >= 200
    assert not fuzz.failures, f"{len(fuzz.failures)} failure(s):\n" + "\n\n".join(fuzz.failures[:20])
