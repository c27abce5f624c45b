"""The study's learning-curve figures and C4c in the survey's terms, on run folders written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctbench.config import CONFIG_DIR
from ctbench.reports.claims import load_claims, parse_claim
from ctbench.reports.collect import collect
from ctbench.reports.convergence import convergence
from ctbench.reports.learning_curves import (
    cascade_survey_terms,
    claim_curves,
    learning_curve_figures,
    learning_curve_lines,
)

CASES = ["case_a", "case_b"]


def write_run(root: Path, model: str, seed: int, liver: list[float], seconds: float | None,
              history: list[list[float]] | None, loss: str = "dice_ce") -> None:
    """A 2D study run folder: resolved config (``study.tag``), per_case.csv, summary.json with convergence."""
    folder = root / f"{model}-{loss}-2d-seed{seed}"
    (folder / "report").mkdir(parents=True)
    (folder / "resolved_config.yaml").write_text("study:\n  tag: ''\n")
    rows = ["case,class,dice,iou,hd95,predict_seconds"]
    rows += [f"{case},liver,{d},{d / (2 - d)},3.0,{seconds or ''}" for case, d in zip(CASES, liver, strict=True)]
    (folder / "report" / "per_case.csv").write_text("\n".join(rows) + "\n")
    summary = {"status": "complete", "model": model, "loss": loss, "dataset": "phantom_study", "dims": 2,
               "seed": seed, "mean_over_classes": ["liver"], "predict_seconds_mean": seconds,
               "predict_hardware": "CPU Test CPU, 1 torch thread(s)"}
    if history is not None:
        summary["convergence"] = convergence(history, 60, True)
    (folder / "report" / "summary.json").write_text(json.dumps(summary))


def plateau(top: float) -> list[list[float]]:
    """Validation every 5 epochs of 60, rising to ``top`` by epoch 34 and flat after: converged."""
    return [[e, top * min(1.0, (e + 1) / 35)] for e in range(4, 60, 5)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    for seed in (0, 1, 2):
        write_run(root, "cascaded_fcn", seed, [0.95, 0.97], 10.0 + seed, plateau(0.7))
        write_run(root, "unet", seed, [0.92, 0.93], 4.0, plateau(0.6) if seed else [[4, 0.2], [54, 0.6]])
    write_run(root, "cascaded_fcn", 3, [0.9, 0.9], 9.0, None)  # trained before the history was kept
    write_run(root, "unet", 0, [0.5, 0.5], 4.0, plateau(0.5), loss="focal")  # on neither side of C4
    found, failed = collect([root])
    assert not failed and len(found) == 8
    return found


@pytest.fixture(scope="module")
def c4():
    return [c for c in load_claims(CONFIG_DIR / "claims") if c.id.split("-")[0] in ("C4a", "C4c")]


def test_curves_put_each_run_on_its_side(runs, c4):
    curves = claim_curves(c4[-1], runs)  # C4c: cascaded_fcn vs unet, loss dice_ce
    assert [(c.side, c.label) for c in curves] == [
        ("candidate", "cascaded_fcn seed 0: converged"), ("candidate", "cascaded_fcn seed 1: converged"),
        ("candidate", "cascaded_fcn seed 2: converged"), ("baseline", "unet seed 0: still improving"),
        ("baseline", "unet seed 1: converged"), ("baseline", "unet seed 2: converged")]
    assert all(c.window == (48, 60) for c in curves)  # the last 20 % of 60 epochs
    assert curves[3].points == ((4, 0.2), (54, 0.6))


def test_claims_on_the_same_runs_share_one_small_figure(runs, c4, tmp_path):
    other = parse_claim(Path("x.yaml"), {"id": "CX-none", "claim": "no runs", "candidate": {"model": "segnet"},
                                         "baseline": {"model": "unet"}, "metric": "dice", "expect": "higher"})
    figures = learning_curve_figures([*c4, other], runs, tmp_path / "figures")
    assert sorted(figures) == sorted(c.id for c in c4)  # no figure for a claim with a side without runs
    assert len(set(figures.values())) == 1 and figures[c4[0].id].name == f"learning_curves_{c4[0].id}.png"
    png = figures[c4[0].id].read_bytes()
    assert png.startswith(b"\x89PNG") and 5_000 < len(png) < 80_000
    lines = learning_curve_lines(figures, tmp_path / "doc")
    assert lines[-1] == f"![{', '.join(c.id for c in c4)}](doc/{figures[c4[0].id].name})"  # one image, both ids
    assert (tmp_path / "doc" / figures[c4[0].id].name).read_bytes() == png


def test_cascade_in_the_survey_terms(runs, c4):
    lines = cascade_survey_terms(c4, runs)
    assert "1 torch thread(s)" in lines[0] and "2 test cases" in lines[0]
    table = lines[2:]
    assert table[0].startswith("| arm | seed | liver Dice | predict s / volume |")
    assert "| survey (Christ et al. 2016, section 3.1) |  | > 0.94 | < 100 |" in table[2]
    assert table[3] == "| cascaded_fcn | 0 | 0.960 | 10.0 | converged |  |"
    assert table[6] == "| cascaded_fcn | 3 | 0.900 | 9.0 | no record |  |"  # in the table without a history
    # cascade: Dice (0.96 x 3 + 0.90) / 4 = 0.945 > 0.94, SD 0.03; (10 + 11 + 12 + 9) / 4 = 10.5 s, SD sqrt(5/3)
    assert table[7] == "| **cascaded_fcn, mean over 4 run(s)** |  | 0.945 ± 0.030 | 10.5 ± 1.3 |  | **yes** |"
    assert table[-1] == "| **unet, mean over 3 run(s)** |  | 0.925 ± 0.000 | 4.0 ± 0.0 |  | **no** |"
    assert cascade_survey_terms([c for c in c4 if not c.id.startswith("C4c")], runs) == []
