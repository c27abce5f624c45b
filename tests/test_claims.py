"""``ctbench report RUNS --claims``: claim files, the verdict rule, and claims.md/.csv through the CLI."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from ctbench.cli import main
from ctbench.errors import CTBenchError
from ctbench.reports.claims import evaluate_claims, judge, load_claims
from ctbench.reports.collect import collect
from ctbench.reports.statistics import HierarchicalResult, hierarchical_test, holm

CASES = [f"case_{i:02d}" for i in range(12)]
BASE = [0.30, 0.42, 0.25, 0.50, 0.38, 0.20, 0.45, 0.33, 0.28, 0.41, 0.36, 0.22]
HD_BASE = [10.0, 8.0, 12.0, 6.0, 9.0, math.nan, 7.0, 11.0, 9.5, 8.5, 10.5, 13.0]  # case_05: lesion missed


def noise(seed: int, i: int, arm: int) -> float:
    """A run's deviation on case i: a seed effect (SD 0.01) plus a case x seed part (SD 0.01)."""
    rng = np.random.default_rng([arm, seed])
    return float(rng.normal(0, 0.01) + rng.normal(0, 0.01, size=len(CASES))[i])


def write_run(folder: Path, model: str, loss: str, seed: int, lesion: list[float], hd95: list[float],
              verdict: str | None = "converged", **overrides: str) -> None:
    """A run folder as ctbench train leaves it: Hydra overrides, resolved config (spacing), report files."""
    (folder / ".hydra").mkdir(parents=True)
    lines = [f"- model={model}", f"- loss={loss}", f"- seed={seed}"] + [f"- {k}={v}" for k, v in overrides.items()]
    (folder / ".hydra" / "overrides.yaml").write_text("\n".join(lines) + "\n")
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / "resolved_config.yaml").write_text("dataset:\n  preprocessing:\n    spacing: [2.0, 2.0, 3.0]\n")
    (folder / "report").mkdir()
    rows = ["case,class,dice,iou,hd95,diagonal_mm,lesion_f1"]
    for i, case in enumerate(CASES):
        rows.append(f"{case},liver,0.9,{0.9 / 1.1},2.0,500.0,")
        hd = "" if math.isnan(hd95[i]) else hd95[i]  # a miss: counted at the 500 mm diagonal
        rows.append(f"{case},lesion,{lesion[i]},{lesion[i] / (2 - lesion[i])},{hd},500.0,{lesion[i] + 0.1}")
    (folder / "report" / "per_case.csv").write_text("\n".join(rows) + "\n")
    summary = {"status": "complete", "model": model, "loss": loss, "dataset": "synthetic", "dims": 3,
               "seed": seed, "mean_over_classes": ["liver", "lesion"]}
    if verdict is not None:
        summary["convergence"] = {"verdict": verdict, "schedule_completed": verdict != "schedule not completed",
                                  "metric": "val/mean_dice", "best_last": 0.5, "best_before": 0.5, "plateau": 0.005}
    (folder / "report" / "summary.json").write_text(json.dumps(summary))


def arm(shift: float, seed: int, scale: float = 1.0) -> list[float]:
    return [b + shift + scale * noise(seed, i, round(1000 * shift)) for i, b in enumerate(BASE)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multirun")
    for seed in range(3):
        write_run(root / f"dice{seed}", "unet", "dice", seed, arm(0, seed), HD_BASE)
        write_run(root / f"focal{seed}", "unet", "focal", seed, arm(0.10, seed), [h + 8 for h in HD_BASE])
        write_run(root / f"psp{seed}", "pspnet", "dice", seed, arm(0.001, seed, 0.1), HD_BASE, postprocess="crf")
        write_run(root / f"ce{seed}", "unet", "ce", seed, arm(0.002, seed, 0.1), HD_BASE)
        write_run(root / f"tversky{seed}", "unet", "tversky", seed, arm(0.2, seed), HD_BASE,
                  verdict="still improving" if seed == 1 else "converged")
        write_run(root / f"old{seed}", "unet", "combo", seed, arm(0.2, seed), HD_BASE, verdict=None)
    write_run(root / "segnet0", "segnet", "dice", 0, arm(0.2, 0), HD_BASE)
    (root / "focal0" / "report" / "progress.png").write_bytes(b"")  # the learning curve a run report draws
    return root


CLAIMS = {
    "a_focal.yaml": "id: C7-focal\nclaim: focal beats Dice on lesions\nsource: survey 4.5\nwhere: {model: unet}\n"
                    "candidate: {loss: focal}\nbaseline: {loss: dice}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "b_hd95.yaml": "id: C7-hd95\nclaim: focal has a lower lesion HD95\nwhere: {model: unet}\n"
                   "candidate: {loss: focal}\nbaseline: {loss: dice}\nmetric: hd95\nclass: lesion\nexpect: lower\n",
    "c_crf.yaml": "id: C3-crf\nclaim: the CRF model is better\ncandidate: {model: pspnet, postprocess: crf}\n"
                  "baseline: {model: unet, loss: ce}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "d_missing.yaml": "id: C5-attention\nclaim: attention gates help\ncandidate: {model: attention_unet}\n"
                      "baseline: {model: unet, loss: dice}\nmetric: dice\nexpect: higher\n",
    "e_one_seed.yaml": "id: C2-segnet\nclaim: SegNet beats U-Net\ncandidate: {model: segnet}\n"
                       "baseline: {model: unet, loss: dice}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "f_unconverged.yaml": "id: C7-tversky\nclaim: Tversky beats Dice\nwhere: {model: unet}\ncandidate: {loss: tversky}\n"
                          "baseline: {loss: dice}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "g_no_record.yaml": "id: C7-combo\nclaim: Combo beats Dice\nwhere: {model: unet}\ncandidate: {loss: combo}\n"
                        "baseline: {loss: dice}\nmetric: dice\nclass: lesion\nexpect: higher\n",
    "h_lesion_f1.yaml": "id: C7-f1\nclaim: focal finds more lesions\nwhere: {model: unet}\ncandidate: {loss: focal}\n"
                        "baseline: {loss: dice}\nmetric: lesion_f1\nclass: lesion\nexpect: higher\n",
    "i_organs.yaml": "id: C7-organs\nclaim: focal segments organs better\nwhere: {model: unet}\n"
                     "candidate: {loss: focal}\nbaseline: {loss: dice}\nmetric: dice\nclasses: [liver]\n"
                     "expect: higher\n",
}


@pytest.fixture(scope="module")
def claims_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("claims")
    for name, text in CLAIMS.items():
        (folder / name).write_text(text)
        os.utime(folder / name, (1_000_000_000, 1_000_000_000))  # declared in 2001, long before the runs
    return folder


@pytest.fixture(scope="module")
def report(runs: Path, claims_dir: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("out")
    code = main(["report", str(runs), "--out", str(out), "--claims", str(claims_dir)])
    with (out / "claims.csv").open(newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    return {"code": code, "rows": rows, "md": (out / "claims.md").read_text()}


def test_verdicts_through_the_cli(report: dict) -> None:
    assert report["code"] == 0
    verdicts = {k: r["verdict"] for k, r in report["rows"].items()}
    assert verdicts == {"C7-focal": "reproduced", "C7-hd95": "contradicted", "C3-crf": "no practical difference",
                        "C5-attention": "not evaluable", "C2-segnet": "not evaluable", "C7-tversky": "not evaluable",
                        "C7-combo": "not evaluable", "C7-f1": "reproduced", "C7-organs": "no practical difference"}


def test_not_evaluable_notes_say_why(report: dict) -> None:
    rows = report["rows"]
    assert "no complete run matches candidate `model=attention_unet`" in rows["C5-attention"]["note"]
    assert "1/3 runs (seeds) per side, 3 needed" in rows["C2-segnet"]["note"]
    assert "tversky1: still improving" in rows["C7-tversky"]["note"]
    assert (rows["C7-tversky"]["converged_candidate"], rows["C7-tversky"]["converged_baseline"]) == ("false", "true")
    assert "no convergence record" in rows["C7-combo"]["note"] and rows["C7-combo"]["converged_candidate"] == "unknown"
    assert rows["C7-tversky"]["p_holm"] == ""  # a claim that is not evaluable enters Holm as p = 1


def test_numbers_are_the_two_stage_bootstrap_of_the_family(report: dict) -> None:
    rows = report["rows"]
    row = rows["C7-focal"]
    focal = np.array([arm(0.10, s) for s in range(3)])
    dice = np.array([arm(0, s) for s in range(3)])
    want = hierarchical_test(focal, dice, level=1 - 0.05 / len(CLAIMS))
    assert row["n_cases"] == "12" and row["candidate_runs"] == "3" and row["family_size"] == str(len(CLAIMS))
    assert float(row["mean_diff"]) == pytest.approx(focal.mean() - dice.mean(), abs=1e-12)
    # each side's level, beside the difference: a lesion Dice of 0.10 over 0.00 is not one of 0.80 over 0.70
    assert (float(row["candidate_mean"]), float(row["baseline_mean"])) == pytest.approx((focal.mean(), dice.mean()))
    assert (float(row["ci_low"]), float(row["ci_high"]), float(row["p_value"])) == pytest.approx(
        (want.low, want.high, want.p), abs=1e-12)
    assert float(row["ci_level"]) == pytest.approx(1 - 0.05 / 9)
    # HD95: focal is 8 mm worse on every case but case_05, missed by both (500 mm each side); the default
    # margin is one 3 mm slice of the evaluation grid; the misses are counted beside the mean
    assert float(rows["C7-hd95"]["mean_diff"]) == pytest.approx(8.0 * 11 / 12)
    assert float(rows["C7-hd95"]["margin"]) == 3.0
    assert (rows["C7-hd95"]["misses_candidate"], rows["C7-hd95"]["misses_baseline"]) == ("3/36", "3/36")
    assert rows["C7-focal"]["misses_candidate"] == ""
    assert "one slice of the evaluation grid" in rows["C7-hd95"]["note"]
    # the organ claim reads the liver only (identical in every run): no lesion enters its mean
    assert float(rows["C7-organs"]["mean_diff"]) == 0.0 and rows["C7-organs"]["classes"] == "liver"


def test_holm_over_the_whole_family(report: dict) -> None:
    rows = report["rows"]
    tested = {k: float(r["p_value"]) for k, r in rows.items() if r["verdict"] != "not evaluable"}
    for claim_id, adjusted in holm(tested, family_size=len(CLAIMS)).items():
        assert float(rows[claim_id]["p_holm"]) == pytest.approx(adjusted, rel=1e-12)
    for r in rows.values():  # a decisive verdict always has Holm p <= 0.05
        if r["verdict"] in ("reproduced", "contradicted"):
            assert float(r["p_holm"]) <= 0.05


def test_predeclaration_recorded(report: dict, claims_dir: Path) -> None:
    import hashlib

    row = report["rows"]["C7-focal"]
    assert row["sha256"] == hashlib.sha256((claims_dir / "a_focal.yaml").read_bytes()).hexdigest()
    assert row["last_change"] == "2001-09-09T01:46:40+00:00" and row["changed_after_runs"] == "false"


def test_a_claim_changed_after_the_runs_is_flagged(runs: Path, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CLAIMS["a_focal.yaml"])  # written now, after the runs
    verdict, = evaluate_claims(load_claims(tmp_path / "a.yaml"), collect([runs])[0], n_resamples=200)
    assert verdict.changed_after_runs


def test_claims_md_prints_the_rule(report: dict) -> None:
    md = report["md"]
    assert "9 of 9 claim(s) shown: 2 reproduced, 1 contradicted, 2 no practical difference, 0 inconclusive, " \
           "4 not evaluable" in md
    assert "Verdict rule: the family is the 9 claim(s) given" in md
    assert "| `C7-focal` | focal beats Dice on lesions (survey 4.5) | dice (lesion) |" in md
    assert "- `C7-focal`: [candidate focal0](" in md and "focal0/report/progress.png)" in md
    assert "`C7-hd95`: misses (at the image diagonal, in the mean above) candidate 3/36, baseline 3/36" in md


def test_no_practical_difference_at_the_floor_is_qualified(report: dict, tmp_path: Path) -> None:
    """Both arms' lesion Dice within the 0.05 margin of 0 (neither learns the lesions): the verdict stays
    *no practical difference*, qualified *at the floor*; C3-crf's (lesion Dice ~0.33 a side) is not."""
    from ctbench.reports.claims import FLOOR_NOTE, at_floor, claims_md, verdict_label

    for seed in range(3):
        for shift, loss in ((0.004, "focal"), (0.001, "dice")):
            lesion = [max(0.0, shift + 0.1 * noise(seed, i, 7)) for i in range(len(CASES))]
            write_run(tmp_path / "runs" / f"{loss}{seed}", "unet", loss, seed, lesion, HD_BASE)
    (tmp_path / "a.yaml").write_text(CLAIMS["a_focal.yaml"])
    verdict, = evaluate_claims(load_claims(tmp_path / "a.yaml"), collect([tmp_path / "runs"])[0], n_resamples=500)
    assert verdict.verdict == "no practical difference" and max(verdict.candidate_mean, verdict.baseline_mean) < 0.05
    assert at_floor(verdict) and verdict.note.startswith(FLOOR_NOTE)
    assert verdict_label(verdict) == "no practical difference (at the floor)"
    assert "**no practical difference (at the floor)**" in claims_md([verdict], ["runs"])
    crf = report["rows"]["C3-crf"]
    assert crf["verdict"] == "no practical difference" and float(crf["candidate_mean"]) > 0.05
    assert "at the floor" not in crf["note"] and "(at the floor)**" not in report["md"]


def test_selection_shows_a_subset_without_changing_the_family(runs: Path, claims_dir: Path) -> None:
    from ctbench.reports.claims import claims_md

    verdicts = evaluate_claims(load_claims(claims_dir), collect([runs])[0], n_resamples=500)
    md = claims_md(verdicts, ["runs"], shown=["C7-focal"])
    assert "1 of 9 claim(s) shown" in md and "`C7-hd95`" not in md
    assert all(v.test is None or v.test.level == pytest.approx(1 - 0.05 / 9) for v in verdicts)


def test_split_families_have_their_own_level_and_holm(runs: Path, claims_dir: Path) -> None:
    """``family_of`` (the study's sensitivity table): each family's own m sets its interval level and Holm; a
    one-claim family is unadjusted, and the same claim in the declared family keeps the 1 - 0.05/9 level."""
    claims = load_claims(claims_dir)
    whole = {v.claim.id: v for v in evaluate_claims(claims, collect([runs])[0], n_resamples=500)}
    split = evaluate_claims(claims, collect([runs])[0], n_resamples=500,
                            family_of=lambda c: c.id if c.id == "C7-focal" else "rest")
    alone = next(v for v in split if v.claim.id == "C7-focal")
    assert alone.family_size == 1 and alone.test.level == pytest.approx(0.95) and alone.p_holm == alone.test.p
    assert whole["C7-focal"].test.level == pytest.approx(1 - 0.05 / 9)
    assert whole["C7-focal"].test.p == alone.test.p and whole["C7-focal"].p_holm >= alone.p_holm
    rest = {v.claim.id: v for v in split if v.claim.id != "C7-focal"}
    tested = {k: v.test.p for k, v in rest.items() if v.test is not None and v.verdict != "not evaluable"}
    for claim_id, adjusted in holm(tested, family_size=8).items():
        assert rest[claim_id].family_size == 8 and rest[claim_id].p_holm == pytest.approx(adjusted, rel=1e-12)


def test_seeds_for_power_is_reported(report: dict) -> None:
    # C3-crf: no seed spread in pspnet beyond 0.1 x the U-Net's: a number of seeds, not blank
    assert report["rows"]["C3-crf"]["seeds_for_80_power"] not in ("",)


def result(low: float, high: float, estimate: float | None = None) -> HierarchicalResult:
    est = (low + high) / 2 if estimate is None else estimate
    return HierarchicalResult(20, 3, 3, est, 0.01, low, high, 0.99, 0.01, 0.0, 0.0)


@pytest.mark.parametrize(("low", "high", "expect", "verdict"), [
    (0.03, 0.09, "higher", "reproduced"),
    (0.03, 0.09, "lower", "contradicted"),
    (-0.09, -0.03, "lower", "reproduced"),
    (-0.09, -0.03, "higher", "contradicted"),
    (0.001, 0.019, "higher", "no practical difference"),  # significant but smaller than the margin
    (-0.015, 0.015, "higher", "no practical difference"),
    (0.001, 0.035, "higher", "inconclusive"),  # excludes 0, estimate 0.018 inside the margin, interval not
    (-0.01, 0.08, "higher", "inconclusive"),
    (0.0, 0.08, "higher", "inconclusive"),  # touching 0 does not exclude it
])
def test_judge(low, high, expect, verdict):
    assert judge(result(low, high), expect, margin=0.02) == verdict


@pytest.mark.parametrize(("text", "message"), [
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: dice\n", "missing key(s) expect"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: Acc-1\nexpect: higher\n", "metric 'Acc-1'"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: lesion_fp\nexpect: lower\n",
     "has no default margin; declare `margin:`"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: dice\nmargin: -1\nexpect: higher\n",
     "margin -1: give a number > 0"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: dice\nclass: a\nclasses: [b]\n"
     "expect: higher\n", "not both"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: b}\nmetric: dice\nexpect: up\n", "expect 'up'"),
    ("id: x\nclaim: y\ncandidate: {loss: a}\nbaseline: {loss: a}\nmetric: dice\nexpect: higher\n", "same runs"),
    ("id: x\nclaim: y\ncandidate: [a]\nbaseline: {loss: b}\nmetric: dice\nexpect: higher\n", "`candidate` must"),
    ("- just a list\n", "one mapping"),
])
def test_bad_claim_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "claim.yaml"
    path.write_text(text)
    with pytest.raises(CTBenchError) as err:
        load_claims(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_bad_claims_argument_exits_with_one_line(runs: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(runs), "--out", str(tmp_path), "--claims", str(tmp_path / "nope")]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--claims" in err and "no such file or folder" in err
    assert not (tmp_path / "comparison.md").exists()  # checked before anything is written


def test_study_claims_load() -> None:
    import ctbench

    claims = load_claims(Path(ctbench.__file__).parent / "configs" / "claims")
    c7 = next(c for c in claims if c.id == "C7a-focal-vs-dice-lesion")
    assert c7.candidate == {"model": "unet", "dims": "2", "study.tag": "", "loss": "focal"}
    assert c7.baseline == {"model": "unet", "dims": "2", "study.tag": "", "loss": "dice"}
    assert c7.expect == "higher" and c7.metric.startswith("lesion_")
    assert all(len(c.sha256) == 64 and not math.isnan(c.last_change) for c in claims)


@pytest.mark.slow
def test_claims_on_real_run_folders(trained_run: Path, tmp_path: Path) -> None:
    """The verdict rule on what ``ctbench train`` writes: three copies of a real run per side (identical
    values) read through per_case.csv's lesion-wise columns and summary.json's convergence block."""
    import shutil

    for side in ("focal", "dice"):
        for seed in range(3):
            run = tmp_path / "runs" / f"{side}{seed}"
            shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints"))
            overrides = run / ".hydra" / "overrides.yaml"
            overrides.write_text(overrides.read_text() + f"- +arm={side}\n- +copy={seed}\n")
    (tmp_path / "c.yaml").write_text("id: C-real\nclaim: focal finds more lesions\ncandidate: {arm: focal}\n"
                                     "baseline: {arm: dice}\nmetric: lesion_f1\nclass: lesion\nexpect: higher\n")
    runs = collect([tmp_path / "runs"])[0]
    assert len(runs) == 6 and all("lesion_f1" in r.values for r in runs)
    verdict, = evaluate_claims(load_claims(tmp_path / "c.yaml"), runs, n_resamples=500)
    record = json.loads((trained_run / "report" / "summary.json").read_text())["convergence"]
    assert (verdict.candidate_runs, verdict.baseline_runs) == (3, 3)
    if record["verdict"] == "converged":
        assert verdict.verdict in ("no practical difference", "not evaluable"), verdict.note  # identical arms
    else:
        assert verdict.verdict == "not evaluable" and record["verdict"] in verdict.note
    assert verdict.margin == 0.05 and verdict.converged_candidate == str(record["verdict"] == "converged").lower()


#: ``compare: strata`` fixture: per seed, each case's small-lesion recall (NaN: the case has no small lesion);
#: every run's mean over the six paired cases is 1/3, so the seeds differ only in which cases they find
SMALL = [[0.0, 0.5, 0.0, 1.0, 0.0, 0.5, math.nan], [0.0, 0.5, 0.5, 1.0, 0.0, 0.0, math.nan],
         [0.5, 0.5, 0.0, 1.0, 0.0, 0.0, math.nan]]
STRATA_CLAIM = ("id: C24a-small\nclaim: the U-Net misses small lesions more often\nsource: survey 5\n"
                "compare: strata\nwhere: {model: unet}\ncandidate: lesion_recall_small\n"
                "baseline: lesion_recall_large\nclass: lesion\nexpect: lower\nmargin: 0.05\n")


def write_strata_run(folder: Path, seed: int) -> None:
    """A run whose per_case.csv has the two strata columns: small = SMALL / 2 + 0.1 seed, large = 0.8 + 0.1
    seed (a seed effect both strata share, which pairing by seed removes); case 6 has no small lesion."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- model=unet\n- loss=dice_ce\n- seed={seed}\n")
    (folder / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (folder / "report").mkdir()
    rows = ["case,class,dice,iou,hd95,diagonal_mm,lesion_recall_small,lesion_recall_large"]
    for i, small in enumerate(SMALL[seed]):
        cell = "" if math.isnan(small) else f"{small / 2 + 0.1 * seed:.6f}"
        rows += [f"case_{i},liver,0.9,0.8,2.0,500.0,,", f"case_{i},lesion,0.5,0.3,4.0,500.0,{cell},{0.8 + 0.1 * seed:.6f}"]
    (folder / "report" / "per_case.csv").write_text("\n".join(rows) + "\n")
    (folder / "report" / "summary.json").write_text(json.dumps(
        {"status": "complete", "model": "unet", "loss": "dice_ce", "dataset": "synthetic", "dims": 2, "seed": seed,
         "mean_over_classes": ["liver", "lesion"], "convergence": {"verdict": "converged"}}))


@pytest.fixture(scope="module")
def strata_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("strata")
    for seed in range(3):
        write_strata_run(root / f"unet{seed}", seed)
    return root


def test_strata_claim_pairs_columns_by_case_and_seed(strata_runs: Path, tmp_path: Path) -> None:
    """Hand-computed: per case, the seed mean of small - large is SMALL's case mean / 2 - 0.8, i.e.
    [1/12, 1/4, 1/12, 1/2, 0, 1/12] - 0.8 on the six cases with both strata: mean -19/30, sample variance
    1/30 (a quarter of [1/6, 1/2, 1/6, 1, 0, 1/6]'s 2/15); every run's mean difference is -19/30, so the
    seed part is 0 although each column alone varies by 0.1 per seed (an unpaired comparison would see it)."""
    (tmp_path / "c.yaml").write_text(STRATA_CLAIM)
    claim, = load_claims(tmp_path / "c.yaml")
    assert (claim.columns, claim.metric, claim.candidate, claim.baseline) == (
        ("lesion_recall_small", "lesion_recall_large"), "lesion_recall_small", {"model": "unet"}, {"model": "unet"})
    verdict, = evaluate_claims([claim], collect([strata_runs])[0], n_resamples=2000)
    t = verdict.test
    assert (verdict.candidate_runs, verdict.baseline_runs, t.n_cases) == (3, 3, 6)
    assert t.estimate == pytest.approx(-19 / 30) and t.case_var == pytest.approx(1 / 30)
    assert t.seed_var == pytest.approx(0, abs=1e-12)
    # the columns' own means: large 0.8 + 0.1 x the mean seed 1 = 0.9, small 19/30 below it
    assert verdict.baseline_mean == pytest.approx(0.9) and verdict.candidate_mean - verdict.baseline_mean == \
        pytest.approx(-19 / 30)
    assert t.high < -0.05 and verdict.verdict == "reproduced", verdict.note
    assert "6 of 7 cases paired" in verdict.note
    diffs = np.array([[s / 2 + 0.1 * k - (0.8 + 0.1 * k) for s in SMALL[k][:6]] for k in range(3)])
    same = hierarchical_test(diffs, np.zeros_like(diffs), level=0.95, n_resamples=2000)
    assert (t.low, t.high, t.p) == pytest.approx((same.low, same.high, same.p))
    assert verdict.paths == (tuple(sorted(strata_runs / f"unet{k}" for k in range(3))), ())


def test_strata_claim_counts_in_the_family_and_prints_its_columns(runs: Path, strata_runs: Path,
                                                                   claims_dir: Path, tmp_path: Path) -> None:
    """A strata claim beside the two-sided claims: one Holm family of 10, its own columns in claims.md/.csv."""
    folder = tmp_path / "claims"
    folder.mkdir()
    for name in (*CLAIMS, ):
        (folder / name).write_text((claims_dir / name).read_text())
    (folder / "z_strata.yaml").write_text(STRATA_CLAIM.replace("where: {model: unet}",
                                                               "where: {model: unet, loss: dice_ce}"))
    out = tmp_path / "out"
    assert main(["report", str(runs), str(strata_runs), "--out", str(out), "--claims", str(folder)]) == 0
    with (out / "claims.csv").open(newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    row = rows["C24a-small"]
    assert len(rows) == 10 and row["family_size"] == "10" and row["verdict"] in ("reproduced", "inconclusive")
    assert float(row["mean_diff"]) == pytest.approx(-19 / 30)
    assert (row["candidate"], row["baseline"]) == ("model=unet loss=dice_ce column=lesion_recall_small",
                                                   "model=unet loss=dice_ce column=lesion_recall_large")
    tested = {k: float(r["p_value"]) for k, r in rows.items() if r["p_value"] and r["verdict"] != "not evaluable"}
    assert float(row["p_holm"]) == pytest.approx(holm(tested, family_size=10)["C24a-small"])
    md = (out / "claims.md").read_text()
    assert "lesion_recall_small vs lesion_recall_large (lesion)" in md
    assert "`model=unet loss=dice_ce column=lesion_recall_small` vs" in md


@pytest.mark.parametrize(("change", "message"), [
    (("candidate: lesion_recall_small", "candidate: {loss: focal}"), "`candidate` names a per_case.csv column"),
    (("baseline: lesion_recall_large", "baseline: lesion_recall_small"), "name the same column"),
    (("class: lesion", "metric: lesion_recall"), "no `metric` or `statistic` here"),
    (("compare: strata", "compare: seeds"), "write `runs` (two sides of runs, the default) or `strata`"),
])
def test_bad_strata_claims(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    (tmp_path / "c.yaml").write_text(STRATA_CLAIM.replace(*change))
    with pytest.raises(CTBenchError) as err:
        load_claims(tmp_path / "c.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("change", "note"), [
    (("where: {model: unet}", "where: {model: unet, seed: 0}"), "1 runs (seeds), 3 needed"),
    (("baseline: lesion_recall_large", "baseline: lesion_recall_medium"),
     "metric 'lesion_recall_small' or 'lesion_recall_medium' is not in per_case.csv of"),
    (("where: {model: unet}", "where: {model: segnet}"), "no complete run matches `model=segnet`"),
])
def test_strata_claim_not_evaluable_says_why(strata_runs: Path, tmp_path: Path, change, note) -> None:
    (tmp_path / "c.yaml").write_text(STRATA_CLAIM.replace(*change))
    verdict, = evaluate_claims(load_claims(tmp_path / "c.yaml"), collect([strata_runs])[0], n_resamples=200)
    assert verdict.verdict == "not evaluable" and note in verdict.note, verdict.note


def test_an_evaluation_run_takes_the_convergence_of_the_training_it_tested(tmp_path, monkeypatch):
    import json as _json

    from ctbench.reports.claims import convergence
    from ctbench.reports.collect import Run

    def run(name: str, summary: dict) -> Run:
        return Run(name, tmp_path / name, "deeplabv3p", "dice_ce", summary, ["liver"], ["liver"], {"dice": {}})

    trained = tmp_path / "deeplabv3p-dice_ce-2d-seed0" / "report"
    trained.mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # the checkpoint's relative path does not resolve from here
    (trained / "summary.json").write_text(_json.dumps({"convergence": {"verdict": "still improving"}}))
    # the checkpoint path as the study wrote it (relative to another working folder): found beside the eval
    evaluated = run("deeplabv3p-dice_ce-2d-seed0-eval-crf",
                    {"checkpoint": "multirun/claims/deeplabv3p-dice_ce-2d-seed0/checkpoints/best.ckpt"})
    assert convergence([evaluated]) == ("false", ["deeplabv3p-dice_ce-2d-seed0-eval-crf: still improving"])
    (trained / "summary.json").write_text(_json.dumps({"convergence": {"verdict": "converged"}}))
    assert convergence([evaluated]) == ("true", [])
    orphan = run("other-eval", {"checkpoint": "elsewhere/run/checkpoints/best.ckpt"})
    assert convergence([orphan]) == ("unknown", ["other-eval: no convergence record"])
    bogus = run("bogus-eval", {"checkpoint": "x/deeplabv3p-dice_ce-2d-seed0/checkpoints/best.ckpt"})
    (trained / "summary.json").write_text(_json.dumps({"convergence": {"verdict": "__import__('os')"}}))
    assert convergence([bogus])[0] == "unknown"  # only a known verdict string is taken
