"""Issue 25: the README's paths as a first-time user takes them (typos, missing folders, refused commands).

Each test calls the command in-process (``ctbench.cli.main``) from a fresh folder and reads its one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctbench import __version__, run_folder
from ctbench.cli import main
from ctbench.config import compose
from ctbench.errors import CTBenchError
from ctbench.reports.collect import find_run_dirs


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    return tmp_path


def run(*argv: str) -> int:
    """``ctbench ARGV`` in-process: its exit status (a refused Hydra command ends in SystemExit, as in the CLI)."""
    try:
        return main(list(argv))
    except SystemExit as stop:
        return int(stop.code or 0)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no message on stderr"
    return err[-1]


@pytest.mark.parametrize(("override", "line"), [
    ("modle=vnet", "unknown key 'modle': did you mean 'model'?"),
    ("trainer.max_epoch=2", "unknown key 'trainer.max_epoch': did you mean 'trainer.max_epochs'?"),
    ("dataset.rooot=/x", "unknown key 'dataset.rooot': did you mean 'dataset.root'?"),
    ("+modle=vnet", "unknown key 'modle': did you mean 'model'?"),
])
def test_typo_is_one_line_with_the_nearest_key(fresh: Path, capsys, override: str, line: str) -> None:
    assert run("train", override) == 2
    assert one_line(capsys) == f"ctbench: error: {line}"
    assert not (fresh / "outputs").exists()


def test_new_top_level_key_nothing_reads_is_refused(fresh: Path, capsys) -> None:
    assert run("train", "+epochs=3") == 2
    assert one_line(capsys).startswith("ctbench: error: unknown key 'epochs': no ctbench component reads it")
    with pytest.raises(CTBenchError, match="did you mean 'model'"):  # the Python API refuses it the same way
        compose("train", ["+modle=vnet"])
    assert compose("train", ["+dataset.crop_ratios=[1,1]"]).dataset.crop_ratios == [1, 1]  # nested: the reader's


def test_dataset_without_root_names_the_key(fresh: Path, capsys) -> None:
    assert run("train", "dataset=msd") == 1
    line = one_line(capsys)
    assert "set dataset.root=PATH" in line and "synthetic" not in line
    assert run("train", "dataset=msd_liver", "debug=fast") == 1
    assert "dataset.root=data/Task03_Liver is not a folder" in one_line(capsys)


def test_debug_fast_keeps_a_chosen_dataset() -> None:
    assert compose("train", ["debug=fast", "dataset=msd_liver"]).dataset.root.endswith("data/Task03_Liver")
    assert compose("train", ["debug=fast"]).dataset.root.endswith("data/synthetic_tiny")
    assert compose("train", []).dataset.root.endswith("data/synthetic")


def test_refused_command_leaves_no_run_folder(fresh: Path, capsys) -> None:
    assert run("train", "dataset=msd") == 1
    assert run("predict") == 1
    assert not (fresh / "outputs").exists(), sorted(p.as_posix() for p in fresh.rglob("*"))


def test_report_skips_folders_of_refused_commands(tmp_path: Path) -> None:
    refused = tmp_path / "outputs" / "unet-dice_ce-3d" / "2026-01-01_00-00-00"  # as older versions left them
    (refused / ".hydra").mkdir(parents=True)
    (refused / "train.log").write_text("[x][ctbench][ERROR] - CTBenchError: dataset.root=data/x is not a folder\n")
    killed = tmp_path / "outputs" / "unet-dice_ce-3d" / "2026-01-01_00-00-01"  # started, no refusal: unfinished
    (killed / ".hydra").mkdir(parents=True)
    (killed / "train.log").write_text("[x][lightning][INFO] - GPU available: False\n")
    assert run_folder.refused_at_setup(refused) and not run_folder.refused_at_setup(killed)
    assert find_run_dirs(tmp_path / "outputs") == [killed]


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ctbench {__version__}"



def test_check_data_checks_the_classes_training_uses(fresh: Path, capsys, monkeypatch) -> None:
    from ctbench.data.synthetic import PhantomSpec, write_dataset

    monkeypatch.setenv("COLUMNS", "400")  # the problem table on one line per problem

    write_dataset(fresh / "five", PhantomSpec(cases=2, seed=0, voxel_mm=(9.0, 11.0)))  # labels 0-4 in dataset.json
    assert run("check-data", "dataset=msd", f"dataset.root={fresh / 'five'}") == 0  # the manifest's 5 classes
    capsys.readouterr()
    assert run("check-data", "dataset=msd_liver", f"dataset.root={fresh / 'five'}") == 1  # the preset's 3
    out = capsys.readouterr().out
    assert "label values not declared" in out and ": 3, 4 (declared: 0, 1, 2)" in out
    assert "the run's classes are dataset.class_names=[background,liver,cancer]: name every label value there" in out


def test_claims_by_name_from_any_folder(fresh: Path) -> None:
    from ctbench.config import CONFIG_DIR
    from ctbench.reports.claims import load_claims
    from ctbench.reports.comparison import claims_path

    assert claims_path("survey") == CONFIG_DIR / "claims"
    assert len(load_claims(claims_path("survey"))) == len(list((CONFIG_DIR / "claims").glob("*.yaml")))
    assert claims_path("c3a_crf_hd95") == CONFIG_DIR / "claims" / "c3a_crf_hd95.yaml"
    with pytest.raises(CTBenchError, match="--claims surveys: no such file or folder.*'survey'"):
        claims_path("surveys")


def test_cross_patient_finds_the_shared_data_beside_the_repository() -> None:
    import importlib.util

    from cli_helpers import REPO

    spec = importlib.util.spec_from_file_location("cross_patient", REPO / "scripts" / "cross_patient.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SHARED_REAL == REPO.parent / "shared" / "data" / "real"


def test_library_noise_of_ordinary_runs_is_silenced(caplog) -> None:
    import logging
    import warnings

    from ctbench.hydra_app import silence_known_warnings

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.INFO, logger=logger.name):
        warnings.simplefilter("always")  # whatever the test run's own filters: only ctbench's are added below
        silence_known_warnings()
        logger.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)")
        logger.info("GPU available: False, used: False")
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid.", UserWarning, stacklevel=1)
        warnings.warn("a warning ctbench does not know", UserWarning, stacklevel=1)
    assert [r.getMessage() for r in caplog.records if r.name == logger.name] == ["GPU available: False, used: False"]
    assert [str(w.message) for w in seen] == ["a warning ctbench does not know"]


def test_a_bad_series_in_a_tree_is_listed_with_a_hint_predict_accepts(tmp_path: Path) -> None:
    from ctbench.config import compose
    from ctbench.engine.predict import resolve_inputs

    from cli_helpers import REPO

    tree = REPO / "tests" / "data" / "real" / "pydicom-ct-tiny"  # CT_small, a 5-slice series, a 4-slice one with a gap
    refused: list[str] = []
    files = resolve_inputs(tree, tmp_path, {}, refused)
    assert sorted(p.name for p in files) == ["000_S1_CT.nii.gz", "002_S5_SmartScore_Gated_0_5_sec.nii.gz"]
    assert len(refused) == 1 and "'Routine Brain'" in refused[0] and refused[0].endswith("(force=true predicts it anyway)")
    assert compose("predict", ["force=true"]).force is True  # the hint is a key predict has
    assert len(resolve_inputs(tree, tmp_path, {}, [], force=True)) == 3
    with pytest.raises(CTBenchError, match="no series of .* can be predicted: series S2"):
        resolve_inputs(tree / "CT2_gap_4slices", tmp_path, {}, [])


def test_a_composition_error_without_a_message_names_its_cause() -> None:
    from hydra.errors import ConfigCompositionException

    from ctbench.config import composition_error_line

    try:
        try:
            raise ValueError("mismatched input '[' expecting BRACE_CLOSE")
        except ValueError as cause:
            raise ConfigCompositionException() from cause
    except ConfigCompositionException as err:
        assert composition_error_line(err) == "mismatched input '[' expecting BRACE_CLOSE"
