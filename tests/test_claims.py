"""``ctbench report RUNS --claims``: claim files, the verdict logic, and claims.md/.csv through the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from scipy import stats

from ctbench.cli import main
from ctbench.errors import CTBenchError
from ctbench.reports.claims import decide, load_claims
from ctbench.reports.statistics import PairedResult, bootstrap_ci, holm

CASES = [f"case_{i:02d}" for i in range(8)]


def write_run(folder: Path, model: str, loss: str, seed: int, lesion: list[float], liver: float = 0.9,
              hd95: list[float] | None = None, **overrides: str) -> None:
    """A run folder as ctbench train leaves it: Hydra overrides, report/per_case.csv, report/summary.json."""
    (folder / ".hydra").mkdir(parents=True)
    lines = [f"- model={model}", f"- loss={loss}", f"- seed={seed}"] + [f"- {k}={v}" for k, v in overrides.items()]
    (folder / ".hydra" / "overrides.yaml").write_text("\n".join(lines) + "\n")
    (folder / "report").mkdir()
    rows = ["case,class,dice,iou,hd95,diagonal_mm"]
    for i, case in enumerate(CASES):
        rows.append(f"{case},liver,{liver},{liver / (2 - liver)},2.0,500.0")
        hd = "" if hd95 is None or math.isnan(hd95[i]) else hd95[i]
        rows.append(f"{case},lesion,{lesion[i]},{lesion[i] / (2 - lesion[i])},{hd},500.0")
    (folder / "report" / "per_case.csv").write_text("\n".join(rows) + "\n")
    summary = {"status": "complete", "model": model, "loss": loss, "dataset": "synthetic", "dims": 3,
               "seed": seed, "mean_over_classes": ["liver", "lesion"]}
    (folder / "report" / "summary.json").write_text(json.dumps(summary))


DICE_S1 = [0.30, 0.42, 0.25, 0.50, 0.38, 0.20, 0.45, 0.33]
DICE_S2 = [0.34, 0.40, 0.29, 0.48, 0.36, 0.24, 0.41, 0.35]
#: focal beats dice on every case by 0.05-0.12
FOCAL = [0.41, 0.50, 0.32, 0.60, 0.45, 0.30, 0.52, 0.40]
#: pspnet: differences against unet:dice alternate in sign
PSPNET = [0.36, 0.37, 0.31, 0.45, 0.41, 0.18, 0.47, 0.30]
HD_DICE = [10.0, 8.0, 12.0, 6.0, 9.0, math.nan, 7.0, 11.0]  # case_05: lesion missed -> 500 mm
HD_FOCAL = [12.0, 9.0, 13.0, 8.0, 10.0, math.nan, 9.0, 12.5]  # case_05 missed too


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multirun")
    write_run(root / "0", "unet", "dice", 1, DICE_S1, hd95=HD_DICE)
    write_run(root / "1", "unet", "dice", 2, DICE_S2, hd95=HD_DICE)
    write_run(root / "2", "unet", "focal", 1, FOCAL, hd95=HD_FOCAL)
    write_run(root / "3", "pspnet", "dice", 1, PSPNET, hd95=HD_DICE, postprocess="crf")
    return root


CLAIMS = {
    "a_focal.yaml": "id: C7-focal\nclaim: focal beats Dice on lesions\nsource: survey 4.5\nwhere: {model: unet}\n"
                    "candidate: {loss: focal}\nbaseline: {loss: dice}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "b_hd95.yaml": "id: C7-hd95\nclaim: focal has a lower lesion HD95\nwhere: {model: unet}\n"
                   "candidate: {loss: focal}\nbaseline: {loss: dice}\nmetric: hd95\nclass: lesion\nexpect: lower\n",
    "c_crf.yaml": "id: C3-crf\nclaim: the CRF model is better\ncandidate: {model: pspnet, postprocess: crf}\n"
                  "baseline: {model: unet, loss: dice}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "d_missing.yaml": "id: C5-attention\nclaim: attention gates help\ncandidate: {model: attention_unet}\n"
                      "baseline: {model: unet, loss: dice}\nmetric: dice\nexpect: higher\n",
}


@pytest.fixture(scope="module")
def report(runs: Path, tmp_path_factory) -> dict:
    claims = tmp_path_factory.mktemp("claims")
    for name, text in CLAIMS.items():
        (claims / name).write_text(text)
    out = tmp_path_factory.mktemp("out")
    code = main(["report", str(runs), "--out", str(out), "--claims", str(claims)])
    with (out / "claims.csv").open(newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    return {"code": code, "rows": rows, "md": (out / "claims.md").read_text()}


def baseline_lesion(metric: str) -> list[float]:
    """unet:dice per case, the two seeds averaged (HD95 of the missed lesion at the 500 mm diagonal)."""
    if metric == "dice":
        return [(a + b) / 2 for a, b in zip(DICE_S1, DICE_S2, strict=True)]
    return [500.0 if math.isnan(h) else h for h in HD_DICE]


def focal_hd95() -> list[float]:
    return [500.0 if math.isnan(h) else h for h in HD_FOCAL]


def test_verdicts_through_the_cli(report: dict) -> None:
    assert report["code"] == 0
    rows = report["rows"]
    assert [rows[i]["verdict"] for i in ("C7-focal", "C7-hd95", "C3-crf", "C5-attention")] == [
        "reproduced", "contradicted", "inconclusive", "no data"]


def test_numbers_are_the_paired_seed_averaged_differences(report: dict) -> None:
    diffs = [f - b for f, b in zip(FOCAL, baseline_lesion("dice"), strict=True)]
    row = report["rows"]["C7-focal"]
    assert row["n_cases"] == "8" and row["candidate_runs"] == "1" and row["baseline_runs"] == "2"
    assert float(row["mean_diff"]) == pytest.approx(sum(diffs) / 8, abs=1e-12)
    assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx(bootstrap_ci(diffs), abs=1e-12)
    assert float(row["p_value"]) == pytest.approx(stats.wilcoxon(diffs).pvalue, rel=1e-12)
    assert float(row["effect_size"]) == 1.0  # every case favours focal

    # HD95: both miss the lesion of case_05, which counts at the 500 mm diagonal on both sides (a
    # difference of 0, not a dropped case); focal is worse on the 7 others
    hd = [f - b for f, b in zip(focal_hd95(), baseline_lesion("hd95"), strict=True)]
    hd_row = report["rows"]["C7-hd95"]
    assert hd_row["n_cases"] == "8"
    assert float(hd_row["mean_diff"]) == pytest.approx(sum(hd) / 8, abs=1e-9)
    low, high = bootstrap_ci(hd)
    assert (float(hd_row["ci_low"]), float(hd_row["ci_high"])) == pytest.approx((low, high), abs=1e-9)


def test_holm_across_the_tested_claims(report: dict) -> None:
    rows = report["rows"]
    raw = {i: float(rows[i]["p_value"]) for i in ("C7-focal", "C7-hd95", "C3-crf")}
    for claim_id, adjusted in holm(raw).items():
        assert float(rows[claim_id]["p_holm"]) == pytest.approx(adjusted, rel=1e-12)
    assert rows["C5-attention"]["p_value"] == "" and "no complete run matches candidate" in rows["C5-attention"]["note"]


def test_claims_md(report: dict) -> None:
    md = report["md"]
    assert "4 claim(s): 1 reproduced, 1 contradicted, 1 inconclusive, 1 no data" in md
    assert "| `C7-focal` | focal beats Dice on lesions (survey 4.5) | dice (lesion) |" in md
    assert "8 x 1/2" in md and "**reproduced**" in md


@pytest.mark.parametrize(("low", "high", "expect", "verdict"), [
    (0.01, 0.05, "higher", "reproduced"),
    (0.01, 0.05, "lower", "contradicted"),
    (-0.05, -0.01, "lower", "reproduced"),
    (-0.05, -0.01, "higher", "contradicted"),
    (-0.01, 0.05, "higher", "inconclusive"),
    (0.0, 0.05, "higher", "inconclusive"),  # touching 0 does not exclude it
])
def test_decide(low, high, expect, verdict):
    assert decide(PairedResult(n=10, ci_low=low, ci_high=high), expect) == verdict


def test_decide_untested_is_inconclusive():
    assert decide(PairedResult(note="not tested: cases differ"), "higher") == "inconclusive"


@pytest.mark.parametrize(("text", "message"), [
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: dice\n", "missing key(s) expect"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: acc\nexpect: higher\n", "metric 'acc'"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: dice\nexpect: up\n", "expect 'up'"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: a}\nmetric: dice\nexpect: higher\n", "same runs"),
    ("id: x\nclaim: y\ncandidate: [a]\nbaseline: {loss: b}\nmetric: dice\nexpect: higher\n", "`candidate` must"),
    ("- just a list\n", "one mapping"),
])
def test_bad_claim_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "claim.yaml"
    path.write_text(text)
    with pytest.raises(CTBenchError, match=None) as err:
        load_claims(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_bad_claims_argument_exits_with_one_line(runs: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(runs), "--out", str(tmp_path), "--claims", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--claims" in err and "does not exist" in err
    assert not (tmp_path / "comparison.md").exists()  # checked before anything is written


def test_study_claims_load() -> None:
    import ctbench

    claims = load_claims(Path(ctbench.__file__).parent / "configs" / "claims")
    c7 = next(c for c in claims if c.id == "C7a-focal-vs-dice-lesion")
    assert c7.candidate == {"model": "unet", "dims": "2", "study.tag": "", "loss": "focal"}
    assert c7.baseline == {"model": "unet", "dims": "2", "study.tag": "", "loss": "dice"}
    assert (c7.metric, c7.cls, c7.expect) == ("dice", "lesion", "higher")
