"""``ctbench report``: run folders in the real report format -> comparison tables, heatmaps, tests."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest

from ctbench.cli import main
from ctbench.run_folder import read_checkpoint_progress

COLUMNS = ("case,class,dice,iou,hd95,assd,nsd,sensitivity,precision,rve,truth_voxels,pred_voxels,"
           "lesions_truth,lesions_detected,lesion_fp").split(",")
CASES = [f"case_{i:03d}" for i in range(1, 8)]
CLASSES = ["liver", "lesion"]
BASE = {("unet", "dice"): 0.80, ("unet", "focal"): 0.806, ("pspnet", "dice"): 0.70, ("pspnet", "focal"): 0.65}
#: The one empty HD95 cell (prediction empty): left out of the means.
NAN_CELL = (("pspnet", "focal"), "case_003", "lesion")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def dice_value(pair: tuple[str, str], seed: int, case_index: int, cls: str) -> float:
    """Deterministic, case-dependent scores so the paired differences are not all equal."""
    k = 1 + list(BASE).index(pair)
    jitter = 0.004 * ((case_index * (k + 2) + seed) % 5)
    if cls == "liver":
        return round(BASE[pair] + 0.01 * case_index + jitter + 0.01 * (seed - 1), 6)
    return round(BASE[pair] - 0.15 + 0.02 * (-1) ** case_index + jitter - 0.005 * (seed - 1), 6)


def case_rows(pair: tuple[str, str], seed: int) -> list[dict[str, float]]:
    rows = []
    for i, case in enumerate(CASES, start=1):
        for cls in CLASSES:
            d = dice_value(pair, seed, i, cls)
            hd = math.nan if (pair, case, cls) == NAN_CELL else round(20 * (1 - d), 6)
            rows.append({"case": case, "class": cls, "dice": d, "iou": d / (2 - d), "hd95": hd})
    return rows


def write_run(folder: Path, model: str, loss: str, seed: int, rows: list[dict] | None = None,
              status: str = "complete", **extra) -> None:
    rows = case_rows((model, loss), seed) if rows is None else rows
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- model={model}\n- loss={loss}\n- seed={seed}\n")
    report = folder / "report"
    report.mkdir()
    with (report / "per_case.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in rows:
            cells = {c: "" for c in COLUMNS} | {k: ("" if isinstance(v, float) and math.isnan(v) else v)
                                                  for k, v in r.items()}
            writer.writerow([cells[c] for c in COLUMNS])
    summary = {
        "status": status, "model": model, "loss": loss, "dataset": "synthetic", "dims": 2, "seed": seed,
        "fold": 0, "n_cases": len({r["case"] for r in rows}), "split": "test", "scope": "whole-volume",
        "mean_dice": 0.0, "mean_iou": 0.0, "per_class": {}, "mean_over_classes": CLASSES,
        "empty_policy": "see docs/report-format.md", "epochs": 2, "train_seconds": 1.0, "params": 10,
    } | extra
    (report / "summary.json").write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """2 models x 2 losses, two seeds of unet:dice, one unfinished and one failed run."""
    import torch

    root = tmp_path_factory.mktemp("multirun")
    jobs = [(("unet", "dice"), 1), (("unet", "dice"), 2), (("unet", "focal"), 1), (("pspnet", "dice"), 1),
            (("pspnet", "focal"), 1)]
    for i, ((model, loss), seed) in enumerate(jobs):
        write_run(root / str(i), model, loss, seed)
    unfinished = root / "5"
    (unfinished / ".hydra").mkdir(parents=True)
    (unfinished / ".hydra" / "overrides.yaml").write_text("- model=unet\n- loss=combo\n")
    (unfinished / "checkpoints").mkdir()
    torch.save({"epoch": 3, "global_step": 120, "state_dict": {"w": torch.zeros(2)}},
               unfinished / "checkpoints" / "last.ckpt")
    write_run(root / "6", "pspnet", "combo", 1, rows=case_rows(("pspnet", "dice"), 1), status="failed",
              error="loss became NaN")
    (root / "6" / "train.log").write_text(
        "[2026-12-01 10:00:00][ctbench][INFO] - epoch 1\n"
        "[2026-12-01 10:00:05][ctbench][ERROR] - FloatingPointError: loss is nan\n"
        "[2026-12-01 10:00:06][ctbench][INFO] - stopping\n")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


@pytest.fixture(scope="module")
def report(grid: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("out")
    code = main(["report", str(grid), "--out", str(out), "--baseline", "unet:dice"])
    with (out / "comparison.csv").open(newline="") as fh:
        rows = {(r["model"], r["loss"]): r for r in csv.DictReader(fh)}
    return {"code": code, "out": out, "rows": rows, "md": (out / "comparison.md").read_text()}


# -------------------------------------------------------------------------------------- by hand


def hand_case_means(pair: tuple[str, str], seed: int, metric: str) -> dict[str, float]:
    """Per case: mean over the classes with a value."""
    out: dict[str, list[float]] = {}
    for r in case_rows(pair, seed):
        if not math.isnan(r[metric]):
            out.setdefault(r["case"], []).append(r[metric])
    return {case: sum(v) / len(v) for case, v in out.items()}


def hand_run_score(pair: tuple[str, str], seed: int, metric: str) -> float:
    """Mean over classes of the per-class mean over cases (NaN left out)."""
    per_class = []
    for cls in CLASSES:
        vals = [r[metric] for r in case_rows(pair, seed) if r["class"] == cls and not math.isnan(r[metric])]
        per_class.append(sum(vals) / len(vals))
    return sum(per_class) / len(per_class)


def test_exit_code_and_outputs(report: dict) -> None:
    assert report["code"] == 0
    out = report["out"]
    for name in ("comparison.md", "comparison.csv", "heatmap_dice.png", "heatmap_hd95.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp")), "atomic writes leave no temporary files"


def test_single_run_numbers(report: dict) -> None:
    row = report["rows"][("unet", "focal")]
    pair = ("unet", "focal")
    assert row["n_runs"] == "1" and row["n_cases"] == str(len(CASES))
    assert float(row["dice_mean"]) == pytest.approx(hand_run_score(pair, 1, "dice"), abs=1e-12)
    assert float(row["dice_std"]) == pytest.approx(
        statistics.stdev(hand_case_means(pair, 1, "dice").values()), abs=1e-12)
    assert row["dice_std_runs"] == ""
    liver = [r["dice"] for r in case_rows(pair, 1) if r["class"] == "liver"]
    assert float(row["dice_liver"]) == pytest.approx(statistics.mean(liver), abs=1e-12)
    assert float(row["dice_liver_std"]) == pytest.approx(statistics.stdev(liver), abs=1e-12)
    assert float(row["iou_mean"]) == pytest.approx(hand_run_score(pair, 1, "iou"), abs=1e-12)


def test_nan_hd95_left_out_of_means(report: dict) -> None:
    row = report["rows"][("pspnet", "focal")]
    pair = ("pspnet", "focal")
    lesion = [r["hd95"] for r in case_rows(pair, 1) if r["class"] == "lesion" and not math.isnan(r["hd95"])]
    assert len(lesion) == len(CASES) - 1
    assert float(row["hd95_lesion"]) == pytest.approx(statistics.mean(lesion), abs=1e-12)
    assert float(row["hd95_mean"]) == pytest.approx(hand_run_score(pair, 1, "hd95"), abs=1e-12)


def test_seeds_give_std_over_runs_and_cases(report: dict) -> None:
    row = report["rows"][("unet", "dice")]
    pair = ("unet", "dice")
    scores = [hand_run_score(pair, s, "dice") for s in (1, 2)]
    assert row["n_runs"] == "2" and row["n_cases"] == str(len(CASES))
    assert row["seeds"] == "1;2"
    assert float(row["dice_mean"]) == pytest.approx(statistics.mean(scores), abs=1e-12)
    assert float(row["dice_std_runs"]) == pytest.approx(statistics.stdev(scores), abs=1e-12)
    s1, s2 = hand_case_means(pair, 1, "dice"), hand_case_means(pair, 2, "dice")
    averaged = [(s1[c] + s2[c]) / 2 for c in CASES]
    assert float(row["dice_std"]) == pytest.approx(statistics.stdev(averaged), abs=1e-12)


def test_sign_flip_p_of_the_seed_averaged_differences(report: dict) -> None:
    from ctbench.reports.statistics import sign_flip_p

    s1, s2 = hand_case_means(("unet", "dice"), 1, "dice"), hand_case_means(("unet", "dice"), 2, "dice")
    baseline = [(s1[c] + s2[c]) / 2 for c in CASES]
    ps = {}
    for pair in [("unet", "focal"), ("pspnet", "dice"), ("pspnet", "focal")]:
        ours = hand_case_means(pair, 1, "dice")
        expected = sign_flip_p([ours[c] - b for c, b in zip(CASES, baseline, strict=True)])
        row = report["rows"][pair]
        assert row["baseline"] == "unet:dice" and row["n_paired"] == str(len(CASES))
        assert float(row["p_value"]) == pytest.approx(expected, rel=1e-12)
        ps[pair] = float(row["p_value"])
    base_row = report["rows"][("unet", "dice")]
    assert base_row["p_value"] == "" and base_row["test_note"] == "baseline"
    # Holm: the smallest p times 3, monotone.
    smallest = min(ps, key=ps.get)
    assert float(report["rows"][smallest]["p_holm"]) == pytest.approx(min(1.0, 3 * ps[smallest]))
    assert "sign-flip permutation" in report["md"] and "per-case foreground mean" in report["md"]


def md_section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 1)
    return md[start:end if end > 0 else None]


def md_row(section: str, first_cell: str) -> list[str]:
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_best_cell_per_row_is_bold(report: dict) -> None:
    dice = md_section(report["md"], "Dice, higher is better")
    header = md_row(dice, "model \\ loss")
    assert header[1:] == ["combo", "dice", "focal"]
    unet, pspnet = md_row(dice, "`unet`"), md_row(dice, "`pspnet`")
    assert unet[3].startswith("**") and not unet[2].startswith("**")   # unet: focal best
    assert pspnet[2].startswith("**") and not pspnet[3].startswith("**")  # pspnet: dice best
    assert "[± " in unet[2] and "2 runs]" in unet[2]
    assert "(baseline)" in unet[2] and "(p=" in unet[3]
    assert unet[1] == "failed" and pspnet[1] == "failed"
    hd95 = md_section(report["md"], "HD95 (mm), lower is better")
    # HD95 = 20 (1 - dice) per cell, so lower is better picks the same losses.
    assert md_row(hd95, "`unet`")[3].startswith("**") and md_row(hd95, "`pspnet`")[2].startswith("**")
    per_class = md_section(report["md"], "Per class: Dice")
    assert "liver" in per_class and "lesion" in per_class


def test_failed_runs_listed(report: dict) -> None:
    failed = md_section(report["md"], "Failed or unfinished runs")
    unfinished = md_row(failed, "`5`")
    assert unfinished[1:3] == ["unet", "combo"]
    assert unfinished[3] == "no report (last.ckpt at epoch 3, step 120)"
    crashed = md_row(failed, "`6`")
    assert crashed[1:3] == ["pspnet", "combo"]
    assert crashed[3].startswith("status 'failed': loss became NaN")
    assert crashed[3].endswith("log: FloatingPointError: loss is nan")
    assert set(report["rows"]) == set(BASE), "failed runs are not aggregated"


def test_pngs_are_valid(report: dict) -> None:
    import matplotlib.image

    for name in ("heatmap_dice.png", "heatmap_hd95.png"):
        path = report["out"] / name
        assert path.read_bytes()[:8] == PNG_MAGIC
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_prints_rich_table(grid: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(grid), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "unet" in text and "pspnet" in text and "focal" in text
    assert "2 failed or unfinished run(s)" in text
    md = (tmp_path / "comparison.md").read_text()
    assert "No baseline: pass `--baseline MODEL:LOSS`" in md
    with (tmp_path / "comparison.csv").open(newline="") as fh:
        assert all(r["p_value"] == "" for r in csv.DictReader(fh))


def test_default_out_is_first_folder(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "unet", "dice", 1)
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "comparison.md").is_file()
    assert (tmp_path / "run" / "heatmap_hd95.png").is_file()


def test_different_cases_are_not_tested(tmp_path: Path) -> None:
    write_run(tmp_path / "a", "unet", "dice", 1)
    rows = [r for r in case_rows(("unet", "focal"), 1) if r["case"] != CASES[0]]
    write_run(tmp_path / "b", "unet", "focal", 1, rows=rows)
    assert main(["report", str(tmp_path), "--baseline", "unet:dice"]) == 0
    with (tmp_path / "comparison.csv").open(newline="") as fh:
        row = {(r["model"], r["loss"]): r for r in csv.DictReader(fh)}[("unet", "focal")]
    assert row["p_value"] == "" and "cases differ" in row["test_note"]


def test_missing_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_empty_folder(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "no run reports below" in capsys.readouterr().err


def test_only_failed_runs(tmp_path: Path, capsys) -> None:
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    assert main(["report", str(tmp_path)]) == 1
    assert "no complete run" in capsys.readouterr().err
    assert "no report (no checkpoint)" in (tmp_path / "comparison.md").read_text()


def test_unknown_baseline_lists_pairs(grid: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(grid), "--out", str(tmp_path), "--baseline", "unet:combo"]) == 2
    err = capsys.readouterr().err
    assert "unet:combo" in err and "unet:dice" in err and "pspnet:focal" in err


def test_unknown_metric(grid: Path, capsys) -> None:
    assert main(["report", str(grid), "--metric", "accuracy"]) == 2
    assert "--metric accuracy" in capsys.readouterr().err


def test_unreadable_summary_and_checkpoint(tmp_path: Path) -> None:
    write_run(tmp_path / "ok", "unet", "dice", 1)
    bad = tmp_path / "bad"
    (bad / "report").mkdir(parents=True)
    (bad / "report" / "summary.json").write_text("{not json")
    (bad / "checkpoints").mkdir()
    (bad / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    assert read_checkpoint_progress(bad / "checkpoints" / "last.ckpt") is None
    assert main(["report", str(tmp_path)]) == 0
    failed = md_section((tmp_path / "comparison.md").read_text(), "Failed or unfinished runs")
    assert "unreadable report/summary.json" in md_row(failed, "`bad`")[3]


# -------------------------------------------------------------------------------------- run folder


def test_run_folder_contract(tmp_path: Path) -> None:
    from ctbench import run_folder

    run = tmp_path / "run"
    assert not run_folder.is_complete(run)
    with pytest.raises(run_folder.RunFolderError, match="report/summary.json missing"):
        run_folder.read_summary(run)
    write_run(run, "unet", "dice", 1, status="running")
    assert not run_folder.is_complete(run)
    assert run_folder.read_summary(run, complete=False)["status"] == "running"
    with pytest.raises(run_folder.RunFolderError, match="status 'running'"):
        run_folder.read_summary(run)
    summary = json.loads((run / "report" / "summary.json").read_text()) | {"status": "complete"}
    (run / "report" / "summary.json").write_text(json.dumps(summary))
    assert run_folder.is_complete(run) and run_folder.read_summary(run)["model"] == "unet"
    rows = run_folder.read_per_case(run)
    assert len(rows) == len(CASES) * len(CLASSES) and rows[0]["case"] == "case_001"
    assert run_folder.checkpoint_path(run, "best") == run / "checkpoints" / "best.ckpt"
    assert run_folder.checkpoint_note(run) == "no checkpoint"


def test_run_folder_bare_report_and_bad_per_case(tmp_path: Path) -> None:
    from ctbench import run_folder

    bare = tmp_path / "score"  # `ctbench score --out score`: summary.json beside per_case.csv
    bare.mkdir()
    (bare / "summary.json").write_text(json.dumps({"status": "complete"}))
    (bare / "per_case.csv").write_text("case,class,dice,iou\na,liver,0.5,0.3\n")
    assert run_folder.report_dir(bare) == bare and run_folder.is_complete(bare)
    with pytest.raises(run_folder.RunFolderError, match="per_case.csv: lacks column"):
        run_folder.read_per_case(bare)
    (bare / "per_case.csv").write_text("case,class,dice,iou,hd95\na,liver,0.5,0.3,far\n")
    with pytest.raises(run_folder.RunFolderError, match=r"line 2: hd95='far' is not a number"):
        run_folder.read_per_case(bare)
    (bare / "per_case.csv").write_text("case,class,dice,iou,hd95\n")
    with pytest.raises(run_folder.RunFolderError, match="has no rows"):
        run_folder.read_per_case(bare)


def test_missed_structure_counts_at_the_diagonal(tmp_path: Path) -> None:
    """HD95 of a missed lesion (empty cell) counts at the case's diagonal_mm in the comparison."""
    write_run(tmp_path / "a", "unet", "dice", 1)
    per_case = tmp_path / "a" / "report" / "per_case.csv"
    with per_case.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["diagonal_mm"] = "400.0"
        if (r["case"], r["class"]) == ("case_002", "lesion"):
            r["dice"], r["iou"], r["hd95"] = "0.0", "0.0", ""
    with per_case.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "diagonal_mm"])
        writer.writeheader()
        writer.writerows(rows)
    assert main(["report", str(tmp_path)]) == 0
    with (tmp_path / "comparison.csv").open(newline="") as fh:
        row = next(csv.DictReader(fh))
    lesion = [400.0 if r["case"] == "case_002" else float(r["hd95"]) for r in rows if r["class"] == "lesion"]
    assert float(row["hd95_lesion"]) == pytest.approx(statistics.mean(lesion), abs=1e-12)
    assert max(lesion) == 400.0
    found = [float(r["hd95"]) for r in rows if r["class"] == "lesion" and r["hd95"]]
    assert len(found) == len(CASES) - 1
    assert float(row["hd95_nan_dropped_lesion"]) == pytest.approx(statistics.mean(found), abs=1e-12)
