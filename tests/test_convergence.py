"""The convergence block of summary.json (reports/convergence.py) on hand curves and on a trained run."""

from __future__ import annotations

import math
import shutil

import pytest

from ctbench.reports.convergence import VERDICTS, convergence
from ctbench.reports.progress import read_metrics

from cli_helpers import TRAINED_RUN, ctbench, read_summary


def curve(values, every=5):
    """Validation every ``every`` epochs (epochs 4, 9, ... as Lightning's check_val_every_n_epoch=5 runs them)."""
    return [[every * (k + 1) - 1, v] for k, v in enumerate(values)]


def test_plateau_is_converged_and_a_rising_curve_is_not():
    flat = curve([0.5, 0.7, 0.8, 0.84, 0.85, 0.852, 0.853, 0.851, 0.854, 0.853])  # 50 epochs, last 20 %: >= 40
    block = convergence(flat, 50, True)
    assert block["last_from_epoch"] == 40 and block["validations"] == 10
    assert block["best_last"] == 0.854 and block["best_before"] == 0.853  # epochs 44, 49 vs 4..39
    assert block["verdict"] == "converged" and block["plateau"] == 0.005 and block["metric"] == "val/mean_dice"
    rising = curve([0.5, 0.6, 0.7, 0.75, 0.78, 0.8, 0.82, 0.83, 0.85, 0.86])
    block = convergence(rising, 50, True)
    assert (block["best_last"], block["best_before"]) == (0.86, 0.83)
    assert block["verdict"] == "still improving"  # 0.03 > 0.005
    assert convergence(rising, 50, True, plateau=0.05)["verdict"] == "converged"


def test_a_curve_that_fell_after_its_best_is_converged_with_a_note():
    """A collapse (0.58 -> 0.44, as a 500-epoch Tversky run did on 5 Dec) is no improvement, so the gate says
    converged; the note says that the curve fell, which a plateau at the best would not show."""
    fell = convergence(curve([0.5, 0.55, 0.57, 0.58, 0.57, 0.58, 0.34, 0.42, 0.44, 0.44]), 50, True)
    assert fell["verdict"] == "converged" and (fell["best_last"], fell["best_before"]) == (0.44, 0.58)
    assert fell["note"].startswith("fell after its best (0.580 before the last 20 % of epochs, at most 0.440")
    dip = convergence(curve([0.5, 0.55, 0.57, 0.58, 0.57, 0.58, 0.57, 0.56, 0.55, 0.54]), 50, True)
    assert dip["verdict"] == "converged" and dip["note"] == ""  # 0.03 below: within FALL, a plateau's noise


def test_schedule_not_completed_wins_and_missing_parts_are_not_a_plateau():
    flat = curve([0.8] * 10)
    assert convergence(flat, 50, False)["verdict"] == "schedule not completed"
    late_only = convergence([[49, 0.8]], 50, True)
    assert late_only["verdict"] == "still improving" and late_only["best_before"] is None
    assert "before the last 20 %" in late_only["note"]
    early_only = convergence([[3, 0.8], [49, float("nan")]], 50, True)
    assert early_only["best_last"] is None and "in the last 20 %" in early_only["note"]
    assert set(VERDICTS) == {"converged", "still improving", "schedule not completed"}
    with pytest.raises(ValueError, match="study.plateau"):
        convergence(flat, 50, True, plateau=-1)


def test_nan_validations_are_ignored():
    block = convergence([[4, float("nan")], [9, 0.7], [19, 0.71]], 20, True)
    assert block["validations"] == 2 and block["best_last"] == 0.71 and block["best_before"] == 0.7


def test_trained_run_summary_has_convergence_and_lesion_blocks(trained_run):
    """conftest's run: 8 epochs, validation every 2 (epochs 1, 3, 5, 7); the last 20 % is epochs 6-7."""
    summary = read_summary(trained_run)
    block = summary["convergence"]
    assert block["schedule_completed"] is True and block["verdict"] in VERDICTS
    assert (block["epochs"], block["last_from_epoch"], block["validations"]) == (8, 6, 4)
    logged = read_metrics(trained_run)["val/mean_dice"]
    assert sorted(logged) == [1, 3, 5, 7]
    assert block["best_last"] == pytest.approx(logged[7], abs=1e-6)
    assert block["best_before"] == pytest.approx(max(logged[e] for e in (1, 3, 5)), abs=1e-6)
    lesion = summary["lesion"]
    assert lesion["iou_threshold"] == 0.1 and list(lesion["per_class"]) == ["lesion"]
    entry = lesion["per_class"]["lesion"]
    assert entry["lesion_cases"] + entry["lesion_free_cases"] == entry["cases"] == summary["n_cases"]
    assert entry["lesions_fp"] >= 0 and (entry["f1"] is None or 0 <= entry["f1"] <= 1)
    assert not math.isnan(summary["mean_dice"])


def test_a_run_stopped_after_its_fit_resumes_with_the_schedule_completed(trained_run, workdir):
    """Stopped in its test or report (last.ckpt holds the whole fit), the resumed run trains nothing and
    Lightning skips on_train_end: its convergence block must still be the uninterrupted run's (it read
    "schedule not completed" before, for two study runs on 3 Dec)."""
    run = workdir / "outputs" / "stopped_after_fit"
    shutil.copytree(trained_run, run)
    (run / "report" / "summary.json").unlink()
    ctbench("train", *TRAINED_RUN, f"hydra.run.dir={run}", "resume=true", cwd=workdir)
    block = read_summary(run)["convergence"]
    assert block["schedule_completed"] is True and block == read_summary(trained_run)["convergence"]
    # its training time is the first process's (kept in last.ckpt), not this process's second or so: the
    # checkpoint is saved after the last epoch, so only the fit's teardown after it is left out
    first, resumed = read_summary(trained_run)["train_seconds"], read_summary(run)["train_seconds"]
    assert 0.8 * first <= resumed <= first + 30, (first, resumed)


@pytest.mark.slow  # 18 composes: ~10 s per study preset here
@pytest.mark.parametrize("study", ["cpu", "full"])
def test_claim_runs_validate_eight_cases_every_five_epochs(study):
    """Every claim experiment: validation every <= 5 epochs on >= 8 cases, a plateau threshold, and a
    time-budget run (C6) on a schedule that runs over its budget."""
    from pathlib import Path

    from ctbench.config import compose
    from ctbench.data.splits import make_splits

    claims = sorted((Path(__file__).resolve().parents[1] / "configs" / "experiment" / "claims").glob("*.yaml"))
    assert claims
    for path in claims:
        if path.stem == "c10_source":  # C10's pretraining run: no claim compares it
            continue
        cfg = compose("train", [f"experiment=claims/{path.stem}", f"study={study}"])
        cases = [f"case_{i:03d}" for i in range(int(cfg.dataset.phantom.cases))]
        folds = make_splits(cases, int(cfg.dataset.test_cases), int(cfg.dataset.num_folds))["folds"]
        assert min(len(f["val"]) for f in folds) >= 8, path.name
        assert cfg.trainer.check_val_every_n_epoch <= 5 and cfg.study.plateau == 0.005, path.name
        if cfg.trainer.get("max_time"):
            assert cfg.optim.scheduler._target_.startswith("ctbench.engine.lr_schedules."), path.name
