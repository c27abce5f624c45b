"""Issue 20 (trust, round two): one regression test per finding, each failing on the code before the fix.

Checkpoints are the tiny run's real ``best.ckpt`` with its stored run config edited, as an attacker would;
DICOM comes from the real CT5N series; commands run through the real entry point in this process.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from ctbench.errors import CTBenchError

CT5N = Path(__file__).parent / "data" / "real" / "pydicom-ct-tiny" / "CT5N_regular_5slices"


def forge(trained_run: Path, out: Path, mutate=None, whole=None) -> Path:
    """The tiny run's ``best.ckpt`` with ``mutate(stored run config)`` (or ``whole(checkpoint)``) applied."""
    ckpt = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    if mutate is not None:
        mutate(ckpt["hyper_parameters"]["cfg"])
    if whole is not None:
        whole(ckpt)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    out.write_bytes(buffer.getvalue())
    return out


def run_cli(args: list[str], capsys) -> tuple[int, list[str], str]:
    """``ctbench ARGS`` through the real entry point in this process: exit code, stderr lines, stdout."""
    from ctbench.cli import main

    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return int(code or 0), [line for line in captured.err.splitlines() if line.strip()], captured.out


def one_line(code: int, lines: list[str], expected_code: int, *needles: str) -> str:
    assert code == expected_code, (code, lines[-5:])
    assert len(lines) == 1 and lines[0].startswith("ctbench: error: "), lines[-5:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tiny_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full((24, 24, 24), -1000, np.int16)
    data[4:20, 4:20, 4:20] = 40
    nib.save(nib.Nifti1Image(data, np.diag([10.0, 10.0, 10.0, 1.0])), str(path))
    return path


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ 1


def test_1_a_library_class_that_loads_code_is_refused_in_every_block(trained_run, tmp_path, capsys, monkeypatch):
    """``monai.losses.PerceptualLoss`` imports ``hubconf.py`` from a folder the checkpoint chooses."""
    monkeypatch.chdir(tmp_path)
    hub, marker = tmp_path / "hub", tmp_path / "pwned"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndependencies = []\n")
    perceptual = {"_target_": "monai.losses.PerceptualLoss", "spatial_dims": 3, "is_fake_3d": False,
                  "network_type": "medicalnet_resnet10_23datasets", "cache_dir": str(hub)}
    image = tiny_image(tmp_path / "ct.nii.gz")
    for block in ("model", "loss"):
        ckpt = forge(trained_run, tmp_path / f"{block}.ckpt", lambda cfg, b=block: cfg.__setitem__(b, dict(perceptual)))
        code, lines, _ = run_cli(["predict", f"ckpt_path={ckpt}", f"input={image}", f"output_dir={tmp_path / 'p'}",
                                  "progress_bar=false"], capsys)
        one_line(code, lines, 2, "refusing checkpoint", f"'{block}._target_'", "allowlist")
        assert not marker.exists() and not (tmp_path / "p").exists()


def test_1_trust_allow_is_read_from_the_command_line_only():
    from omegaconf import OmegaConf

    from ctbench.config import RunContext
    from ctbench.engine.checkpoint import trusted_classes

    cfg = OmegaConf.create({"trust": {"allow": ["monai.networks.nets.UNet"]}})
    assert trusted_classes(cfg, RunContext(Path("."), overrides=("trust.allow=[monai.networks.nets.UNet]",))) == [
        "monai.networks.nets.UNet"]
    assert trusted_classes(cfg, RunContext(Path("."), overrides=("experiment=x",))) == []  # set by a file: ignored


# ------------------------------------------------------------------------------------------------ 2


@pytest.mark.slow
def test_2_eval_never_writes_where_a_checkpoint_says(trained_run, workdir, tmp_path):
    from cli_helpers import ctbench

    victim = tmp_path / "other_dataset"
    victim.mkdir()
    (victim / "dataset.json").write_text(json.dumps({"name": "someone else's", "training": []}))
    before = digest(victim)

    def elsewhere(cfg):
        cfg["dataset"]["root"] = str(victim)
        cfg["dataset"]["cache_dir"] = str(victim / "cache")
        cfg["dataset"]["phantom"]["cases"] = 3  # a spec that differs: the old code regenerated the phantom there

    ckpt = forge(trained_run, tmp_path / "elsewhere.ckpt", elsewhere)
    ctbench("eval", f"ckpt_path={ckpt}", "debug=fast", "progress_bar=false", f"hydra.run.dir={tmp_path / 'eval'}",
            cwd=workdir)
    assert digest(victim) == before  # nothing replaced, no cache file written there
    assert json.loads((tmp_path / "eval" / "report" / "summary.json").read_text())["status"] == "complete"


# ------------------------------------------------------------------------------------------------ 3


def test_3_eval_refuses_a_complete_run_folder_unless_overwrite(trained_run, tmp_path, capsys):
    run = tmp_path / "finished"
    shutil.copytree(trained_run, run)
    before = digest(run)
    code, lines, _ = run_cli(["eval", f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", "progress_bar=false",
                              f"hydra.run.dir={run}"], capsys)
    one_line(code, lines, 2, "already holds a complete report", "overwrite=true")
    after = digest(run)
    assert {k: v for k, v in after.items() if k.endswith((".json", ".csv", ".ckpt", ".md"))} == {
        k: v for k, v in before.items() if k.endswith((".json", ".csv", ".ckpt", ".md"))}


# ------------------------------------------------------------------------------------------------ 4


def test_4_predict_guards_dicom_files_and_folders_like_nifti(trained_run, tmp_path, capsys):
    src = tmp_path / "study" / "ct"
    shutil.copytree(CT5N, src)
    before = digest(src)
    one = sorted(src.iterdir())[0]
    cases = [
        ([f"input={one}", f"output_dir={src}"], "holds the input"),  # one DICOM file, its own folder as output
        ([f"input={one}", f"output_dir={src}", "overwrite=true"], "holds the input"),
        ([f"input={tmp_path / 'study'}", f"output_dir={src}"], "holds the input"),  # a folder holding DICOM inputs
        ([f"input={src}", f"output_dir={src / 'pred'}"], "inside the DICOM input folder"),
    ]
    for args, needle in cases:
        code, lines, _ = run_cli(["predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", *args,
                                  "progress_bar=false"], capsys)
        one_line(code, lines, 1, needle)
        assert digest(src) == before, args


# ------------------------------------------------------------------------------------------------ 5


def _identified_series(dst: Path, description: str) -> Path:
    dst.mkdir(parents=True)
    for path in sorted(CT5N.iterdir()):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "QUIMBYXAVIER^LI", "PIDQ5531", "19611231"
        ds.OtherPatientIDs = ["ALPHA7719", "BRAVO8826"]
        ds.OperatorsName = ["OPALEWSKI^QUENTIN", "ZYWICKA^ROSA"]
        ds.StudyDate = ds.SeriesDate = "20190312"
        ds.SeriesDescription = description
        ds.save_as(dst / path.name)
    return dst


def test_5_multi_valued_tags_and_dates_never_reach_names_or_sidecars(tmp_path):
    from ctbench.data.dicom import convert_tree

    texts = {"multi": "Chest BRAVO8826 low dose", "operator": "Abdomen ZYWICKA", "date": "CT born 31.12.1961 ax",
             "study": "Thorax 2019-03-12 venous"}
    written = []
    for name, description in texts.items():
        src = _identified_series(tmp_path / "src" / name, description)
        written += convert_tree(src, tmp_path / "out" / name, progress=False).written
    assert len(written) == len(texts)
    for item in written:
        blob = item.nifti.name + item.sidecar.read_text()
        for needle in ("BRAVO8826", "ALPHA7719", "ZYWICKA", "OPALEWSKI", "1961", "2019-03-12", "20190312"):
            assert needle not in blob.upper(), (item.nifti.name, needle)


def test_5_label_maps_get_a_fresh_header_with_the_geometry_only(tmp_path):
    from ctbench.engine.predict import save_label

    image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.diag([0.7, 0.8, 2.5, 1.0]))
    header = image.header
    header["descrip"], header["aux_file"], header["intent_name"] = b"QUIMBYXAVIER 1961", b"PIDQ5531", b"QUIMBY"
    header["db_name"] = b"PIDQ5531"
    header.extensions.append(nib.nifti1.Nifti1Extension(6, b"patient QUIMBYXAVIER born 19611231"))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=2)
    path = tmp_path / "QUIMBY.nii"
    nib.save(image, str(path))
    original = nib.load(str(path))
    save_label(np.ones((6, 5, 4), np.uint8), original, tmp_path / "label.nii.gz")
    out = nib.load(str(tmp_path / "label.nii.gz"))
    assert np.allclose(out.affine, original.affine)
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 2)
    assert out.header.get_data_dtype() == np.uint8 and len(out.header.extensions) == 0
    for field in ("descrip", "aux_file", "intent_name", "db_name"):
        assert not bytes(out.header[field]).strip(b"\x00"), field
    assert b"QUIMBY" not in (tmp_path / "label.nii.gz").read_bytes()


def test_5_predict_records_no_input_path_in_its_run_folder(trained_run, tmp_path, capsys):
    image = tiny_image(tmp_path / "QUIMBYXAVIER_19611231" / "ct.nii.gz")
    run = tmp_path / "run"
    code, lines, out = run_cli(["predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", f"input={image}",
                                f"output_dir={tmp_path / 'pred'}", "progress_bar=false", f"hydra.run.dir={run}"], capsys)
    assert code == 0, lines
    assert (tmp_path / "pred" / "ct.nii.gz").is_file()
    for path in (p for p in run.rglob("*") if p.is_file()):
        assert b"QUIMBYXAVIER" not in path.read_bytes(), path
    assert "QUIMBYXAVIER" not in out + "\n".join(lines)


def test_5_convert_prints_no_path_holding_the_patients_name(tmp_path, capsys):
    src = tmp_path / "export"
    _identified_series(src / "series", "Chest")
    notes = src / "QUIMBYXAVIER_notes"
    notes.mkdir()
    (notes / "scan.dcm").write_bytes(b"not dicom at all")
    code, lines, out = run_cli(["convert", str(src), str(tmp_path / "out")], capsys)
    assert code == 0, lines
    assert "not DICOM" in out  # the bad file is reported, its folder name redacted
    assert "QUIMBYXAVIER" not in (out + "\n".join(lines)).upper()


# ------------------------------------------------------------------------------------------------ 6


def test_6_caps_and_widths_never_come_from_a_checkpoint(trained_run, tmp_path, capsys, monkeypatch):
    from ctbench.config import compose_with_context
    from ctbench.engine.checkpoint import command_run_config

    monkeypatch.chdir(tmp_path)

    def uncapped(cfg):
        cfg["dataset"]["max_voxels"] = 10**15
        cfg["dataset"]["cache_dir"] = "/somewhere/else"

    ckpt = forge(trained_run, tmp_path / "uncapped.ckpt", uncapped)
    cfg, ctx = compose_with_context("predict", [f"ckpt_path={ckpt}"])
    run_cfg, _ = command_run_config(cfg, ctx, ckpt)
    assert run_cfg.dataset.max_voxels == cfg.dataset.max_voxels != 10**15
    assert run_cfg.dataset.cache_dir == cfg.dataset.cache_dir
    image = tiny_image(tmp_path / "ct.nii.gz")
    payloads = {"spacing": lambda c: c["dataset"]["preprocessing"].__setitem__("spacing", [0.001, 0.001, 0.001]),
                "widths": lambda c: c["model"].__setitem__("channels", [200_000, 16, 32, 64])}
    for name, mutate in payloads.items():
        ckpt = forge(trained_run, tmp_path / f"{name}.ckpt", mutate)
        code, lines, _ = run_cli(["predict", f"ckpt_path={ckpt}", f"input={image}", f"output_dir={tmp_path / 'p'}",
                                  "progress_bar=false"], capsys)
        one_line(code, lines, 2, "refusing checkpoint")


# ------------------------------------------------------------------------------------------------ 7


def test_7_work_per_image_is_bounded_by_the_schema(trained_run, tmp_path, monkeypatch):
    from ctbench.config import compose_with_context
    from ctbench.engine.checkpoint import command_run_config

    monkeypatch.chdir(tmp_path)
    for flips, ok in (([0, 1, 2] * 200_000, False), ([0, 3], False), ([True], False), ([2, 0], True)):
        ckpt = forge(trained_run, tmp_path / "flips.ckpt", lambda c, f=flips: c["inference"].__setitem__("tta_flips", f))
        cfg, ctx = compose_with_context("predict", [f"ckpt_path={ckpt}"])
        if ok:
            assert list(command_run_config(cfg, ctx, ckpt)[0].inference.tta_flips) == flips
            continue
        with pytest.raises(CTBenchError, match="'inference.tta_flips'") as err:
            command_run_config(cfg, ctx, ckpt)
        assert err.value.exit_code == 2


# ------------------------------------------------------------------------------------------------ 8


def test_8_decompressed_size_is_checked_against_available_memory(trained_run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "big.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((160, 160, 160), np.float64), np.diag([10.0, 10.0, 10.0, 1.0])), str(path))
    assert path.stat().st_size < 200_000  # 33 MB once read
    monkeypatch.setattr("ctbench.data.voxel_budget.available_memory", lambda: 8_000_000)
    code, lines, _ = run_cli(["predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", f"input={path}",
                              f"output_dir={tmp_path / 'p'}", "progress_bar=false"], capsys)
    one_line(code, lines, 1, "big.nii.gz", "0.0328 GB", "memory available")


def test_8_the_top_level_handler_never_crashes(capsys):
    from ctbench.cli import _run_guarded

    def out_of_memory():
        raise MemoryError()

    def empty():
        raise CTBenchError("", exit_code=2)

    assert _run_guarded(out_of_memory) == 1
    assert _run_guarded(empty) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2 and "MemoryError" in lines[0] and lines[1] == "ctbench: error: CTBenchError", lines


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\n"


def test_8_yaml_aliases_are_refused_in_claims_and_run_folders(tmp_path):
    from ctbench.reports.claims import load_claims
    from ctbench.reports.collect import config_value

    claims = tmp_path / "claims.yaml"
    claims.write_text("id: c1\nclaim: x\n" + BOMB)
    with pytest.raises(CTBenchError, match="alias"):
        load_claims(claims)
    run = tmp_path / "run"
    run.mkdir()
    (run / "resolved_config.yaml").write_text("model: {_target_: ctbench.models.unet.UNet}\n" + BOMB)
    assert config_value(run, "model._target_") is None  # refused, not expanded


# ------------------------------------------------------------------------------------------------ 9


def test_9_bad_values_are_one_line_not_a_traceback(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = tiny_image(tmp_path / "ct.nii.gz")
    listed = forge(trained_run, tmp_path / "list.ckpt", whole=lambda c: c.__setitem__("state_dict", list(
        c["state_dict"].values())))
    five = forge(trained_run, tmp_path / "dims.ckpt", lambda c: c.__setitem__("dims", 5))
    good = trained_run / "checkpoints" / "best.ckpt"
    for ckpt, extra, needle in ((listed, [], "'state_dict'"), (five, [], "'dims'"),
                                (good, ["inference.blend=foo"], "'inference.blend'")):
        code, lines, _ = run_cli(["predict", f"ckpt_path={ckpt}", f"input={image}", f"output_dir={tmp_path / 'p'}",
                                  "progress_bar=false", *extra], capsys)
        one_line(code, lines, 2, needle)


def test_9_a_file_ending_that_is_a_path_is_one_line(tmp_path):
    from ctbench.data.readers.msd import MSDReader

    root = tmp_path / "msd"
    tiny_image(root / "imagesTr" / "a.nii.gz")
    tiny_image(root / "labelsTr" / "a.nii.gz")
    entry = {"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1}, "file_ending": ".nii.gz/../x",
                                                  "channel_names": {"0": "CT"}, "training": [entry]}))
    with pytest.raises(CTBenchError, match="file_ending '.nii.gz/../x' is not a file ending"):
        MSDReader({"root": str(root), "name": "msd"}).cases()


def test_a_stored_key_with_control_characters_is_quoted_on_one_line():
    """Keys come from the file: a newline or carriage return in one must not break the one-line refusal."""
    from ctbench.engine.checkpoint_schema import SchemaError

    err = SchemaError("checkpoint x.ckpt", "model.\r\nwidth\x1b[2J", 4097, "must be at most 4096 in size")
    assert str(err) == r"refusing checkpoint x.ckpt: 'model.\r\nwidth\x1b[2J' = 4097: must be at most 4096 in size"
