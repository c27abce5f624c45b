"""``ctbench study`` and the survey-reproduction study's parts: its claim files and experiments compose, the
``detection`` metric, the ``seed_sd`` statistic, config-key selectors, crop ratios and Figure 9's claim."""

from __future__ import annotations

import csv
import functools
import json
import os
import statistics
from pathlib import Path

import pytest
import torch

from ctbench import study
from ctbench.cli import main
from ctbench.config import CONFIG_DIR, compose_with_context, group_choices
from ctbench.errors import CTBenchError
from ctbench.reports.claims import evaluate_claims, load_claims, parse_claim
from ctbench.reports.collect import collect

CASES = [f"case_{i:02d}" for i in range(6)]


def write_run(folder: Path, loss: str, seed: int, lesion_dice: list[float], detected: list[int],
              tag: str = "", epochs: int = 100, arm: str | None = None) -> None:
    """A run folder as ``ctbench train`` leaves it, with a resolved config holding ``study.tag`` (and ``study.arm``
    where given) and the epochs."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n- seed={seed}\n")
    (folder / "resolved_config.yaml").write_text(f"study:\n  tag: '{tag}'\n" + (f"  arm: {arm}\n" if arm else "")
                                                 + "postprocess: null\n"
                                                 f"trainer:\n  max_epochs: {epochs}\n")
    (folder / "report").mkdir()
    rows = ["case,class,dice,iou,hd95,diagonal_mm,lesions_truth,lesions_detected"]
    for i, case in enumerate(CASES):
        truth = 0 if i == 5 else 4  # case_05 has no lesion: detection undefined there
        rows.append(f"{case},lesion,{lesion_dice[i]},0.1,5.0,500.0,{truth},{detected[i]}")
    (folder / "report" / "per_case.csv").write_text("\n".join(rows) + "\n")
    summary = {"status": "complete", "model": "unet", "loss": loss, "dataset": "phantom_study", "dims": 2,
               "seed": seed, "mean_over_classes": ["lesion"],
               "convergence": {"verdict": "converged", "schedule_completed": True, "metric": "val/mean_dice",
                               "best_last": 0.5, "best_before": 0.5, "plateau": 0.005}}
    (folder / "report" / "summary.json").write_text(json.dumps(summary))


def claim_data(**extra: object) -> dict:
    return {"id": "C8", "claim": "combo is more stable", "where": {"study.tag": ""},
            "candidate": {"loss": "combo"}, "baseline": {"loss": "dice"}, "metric": "dice", "class": "lesion",
            "expect": "lower", **extra}


COMBO = [[0.40, 0.50, 0.30, 0.60, 0.20, 1.0], [0.42, 0.49, 0.31, 0.58, 0.22, 1.0], [0.41, 0.51, 0.29, 0.60, 0.21, 1.0]]
DICE = [[0.30, 0.60, 0.10, 0.70, 0.00, 1.0], [0.50, 0.40, 0.35, 0.50, 0.25, 1.0], [0.20, 0.55, 0.20, 0.65, 0.10, 1.0]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("claims")
    for seed in range(3):
        write_run(root / f"combo{seed}", "combo", seed, COMBO[seed], [2, 3, 1, 4, 0, 0])
        write_run(root / f"dice{seed}", "dice", seed, DICE[seed], [1, 3, 0, 4, 0, 0])
    write_run(root / "dice-same-time", "dice", 0, [0.9] * 6, [4] * 6, tag="-same-time")  # another arm
    return root


def test_seed_sd_compares_each_cases_spread_across_seeds(runs, tmp_path):
    verdict, = evaluate_claims([parse_claim(tmp_path / "c.yaml", claim_data(statistic="seed_sd"))],
                               collect([runs])[0])
    # the "-same-time" run is left out by study.tag: "" (read from resolved_config.yaml)
    assert (verdict.candidate_runs, verdict.baseline_runs) == (3, 3)
    sd = lambda rows, i: statistics.stdev(r[i] for r in rows)  # noqa: E731
    want = [sd(COMBO, i) - sd(DICE, i) for i in range(6)]
    assert verdict.n_cases == 6
    assert verdict.test.estimate == pytest.approx(sum(want) / 6)
    assert verdict.test.high < 0 and verdict.verdict == "reproduced"


def test_seed_sd_with_one_seed_is_refused_with_a_note(runs, tmp_path):
    one = parse_claim(tmp_path / "c.yaml", claim_data(statistic="seed_sd", where={"study.tag": "", "seed": "0"}))
    verdict, = evaluate_claims([one], collect([runs])[0])
    assert verdict.verdict == "not evaluable" and "1/1 runs (seeds) per side, 3 needed" in verdict.note


def test_unknown_statistic_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text(json.dumps(claim_data(statistic="median")))  # JSON is YAML
    with pytest.raises(CTBenchError, match="statistic 'median' unknown, choose one of mean, seed_sd"):
        load_claims(tmp_path / "c.yaml")


def test_detection_is_detected_over_truth_lesions_and_undefined_without_any(runs, tmp_path):
    data = claim_data(metric="detection", expect="higher")
    verdict, = evaluate_claims([parse_claim(tmp_path / "c.yaml", data)], collect([runs])[0])
    # per case combo - dice: (2-1)/4, 0, (1-0)/4, 0, 0; case_05 (no truth lesion) is not a pair
    assert verdict.n_cases == 5 and "5 of 6 cases paired" in verdict.note
    assert verdict.test.estimate == pytest.approx((0.25 + 0.25) / 5)


def test_config_value_selector_reads_null_and_nested_keys(runs):
    run = next(r for r in collect([runs])[0] if r.path.name == "dice-same-time")
    assert run.attribute("study.tag") == "-same-time"
    assert run.attribute("postprocess") == "null"
    assert run.attribute("no.such.key") is None


def test_every_study_claim_file_loads_and_names_a_known_claim():
    claims = load_claims(CONFIG_DIR / "claims")
    ids = [c.id for c in claims]
    assert len(ids) == len(set(ids)) >= 20
    for c in claims:  # the study's table groups the files by their C-number
        assert study.claim_key(c.id) in study.CLAIMS, c.id
    assert {c.statistic for c in claims} == {"mean", "seed_sd"}


@pytest.mark.parametrize("experiment", group_choices("experiment/claims"))
def test_claim_experiments_compose_with_their_run_folder(experiment):
    # the first job of each experiment (every job at both sizes: the slow test of each claim's three seeds)
    for point in study.sweep_points(experiment)[:1]:
        cfg, ctx = compose_with_context("train", [f"experiment=claims/{experiment}", *point])
        assert ctx.run_dir.parent.name in ("claims", "claims_sources")
        assert cfg.dataset.name in ("phantom_study", "phantom_phase", "phantom_touching", "synthetic")  # C23, C22
        full, full_ctx = compose_with_context("train", [f"experiment=claims/{experiment}", *point, "study=full"])
        assert full_ctx.run_dir.parent.name in ("claims_full", "claims_full_sources")  # never the CPU sources
        assert full.trainer.max_epochs >= cfg.trainer.max_epochs


@pytest.mark.parametrize("preset", ["cpu", "full"])
def test_a_network_trains_its_epochs_in_every_claim_and_c10_counts_its_sources(preset):
    # study.epochs_by_model: U-Net at long_epochs in C2, 2D PSPNet in C11 at study.epochs; the 3D U-Net (C6, C11)
    # at its own epochs (unet_3d: still improving at 100 and 150) and C6's 2D arm with it, in its own folders;
    # C10's equal-compute scratch arm = the source's epochs + the fine-tuning epochs
    def epochs(*overrides: str) -> int:
        return int(compose_with_context("train", [*overrides, f"study={preset}"])[0].trainer.max_epochs)

    cfg = compose_with_context("train", ["experiment=claims/c2_unet_segnet", f"study={preset}"])[0]
    long, short = int(cfg.study.long_epochs), int(cfg.study.epochs)
    assert long > short
    assert epochs("experiment=claims/c2_unet_segnet", "model=unet") == long
    assert epochs("experiment=claims/c11_pspnet", "model=pspnet", "dims=2") == short
    longer = int(cfg.study.longer_epochs)
    unet_3d = int(cfg.study.epochs_by_model.unet_3d)
    # the 3D PSPNet: seeds still improving at 60, 100 and 150 (4 Dec), so as long as the 3D U-Net
    assert epochs("experiment=claims/c11_pspnet", "model=pspnet", "dims=3") == unet_3d
    assert unet_3d > longer and epochs("experiment=claims/c6_3d_vs_2d") == epochs("experiment=claims/c6_2d_equal_epochs") == unet_3d
    assert epochs("experiment=claims/c11_pspnet", "model=unet", "dims=3") == unet_3d  # the same 3D U-Net
    assert epochs("experiment=claims/c11_pspnet", "model=unet", "dims=2") == long
    c6 = compose_with_context("train", ["experiment=claims/c6_2d_equal_epochs", f"study={preset}"])[1]
    assert c6.run_dir.name == "unet-dice_ce-2d-seed0-c6"  # not the shared 100-epoch U-Net's folder
    assert longer > long  # the FCNs, still improving at long_epochs, in C1 and in C2a alike
    assert {epochs("experiment=claims/c1_fcn_skips", f"model={m}") for m in ("fcn32s", "fcn16s", "fcn8s")} == {longer}
    assert epochs("experiment=claims/c2_unet_segnet", "model=fcn8s") == longer
    # SegNet, still improving at 100 and at 150, trains as long as the 3D U-Net
    assert epochs("experiment=claims/c2_unet_segnet", "model=segnet") == int(cfg.study.epochs_by_model.segnet) == unet_3d
    assert epochs("experiment=claims/c4_cascade", "model=cascaded_fcn") == longer  # still improving at 100
    assert epochs("experiment=claims/c4_cascade", "model=unet") == long  # the shared U-Net, converged at 100
    assert epochs("experiment=claims/c3_crf") == long
    assert epochs("experiment=claims/c14_deeplab", "model=deeplabv2") == short
    # still improving at 60 (3 Dec): C25's two networks at equal epochs (and DynUNet again at 100), C13's
    # FC-DenseNet as its U-Net
    assert {epochs("experiment=claims/c25_cnn_vs_swinunetr", f"model={m}") for m in ("dynunet", "swinunetr")} == {longer}
    assert epochs("experiment=claims/c13_fcdensenet") == epochs("experiment=claims/c2_unet_segnet", "model=unet") == long
    assert epochs("experiment=claims/c12_drinet", "model=drinet") == long  # still improving at 60 (3 Dec)
    assert epochs("experiment=claims/c12_drinet", "model=fcn8s") == longer  # C1's FCN-8s runs
    # a loss arm still improving (4 Dec: C17's Tversky alpha 0.7 arm) moves up alone, its comparison arm stays;
    # still improving at 100, 150 and 250, it trains at the top tier (5 Dec), above the 3D U-Net
    top = int(cfg.study.top_epochs)
    assert epochs("experiment=claims/c17_tversky") == top > unet_3d
    assert {epochs("experiment=claims/c7_small_losses", f"loss={loss}") for loss in  # arms named by their loss
            ("focal_tversky", "exp_log", "generalized_dice")} == {longer}
    assert epochs("experiment=claims/c7_small_losses", "loss=tversky") == epochs("experiment=claims/unet_ce_dice",
                                                                                 "loss=dice") == long
    # C16's two betas are arms of their own (study.arm), each moved up when one of its seeds was still improving
    # (beta 2: seed 2 +0.007 at 100; beta 0.5: seed 2 +0.021 at 100), while CE, their baseline, stays at 100
    c16 = "experiment=claims/c16_wce_beta"
    assert epochs(c16, "study.arm=wce_beta2") == epochs(c16, "study.arm=wce_beta0_5") == longer
    assert epochs("experiment=claims/unet_ce_dice", "loss=ce") == long
    assert [float(compose_with_context("train", [c16, f"study.arm={arm}", f"study={preset}"])[0].loss.beta)
            for arm in ("wce_beta2", "wce_beta0_5")] == [2.0, 0.5]
    # C22's distance-weighted loss, both w0 (one loss, one arm), still improving at 100, 150 and 250; its CE
    # baseline and C23's two arms are arms of their own (study.arm): a tier move there leaves C18's CE where it is
    assert {epochs("experiment=claims/c22_touching", f"loss.w0={w}") for w in (10.0, 0.0)} == {top}
    assert epochs("experiment=claims/c22_touching_ce") == long
    # C23's conservative loss, still improving at 100, 150 and 250, moves alone: its CE (C23's baseline) stays
    c23 = "experiment=claims/c23_conservative_phase"
    assert (epochs(c23, "loss=conservative"), epochs(c23, "loss=ce")) == (top, long)
    assert epochs("experiment=claims/c22_touching_ce", "++study.epochs_by_arm.ce_touching=7") == 7
    assert {epochs("experiment=claims/c23_conservative_phase", f"loss={loss}", f"++study.epochs_by_arm.{loss}_phase=7")
            for loss in ("ce", "conservative")} == {7}
    assert epochs("experiment=claims/unet_ce_dice", "loss=ce", "++study.epochs_by_arm.ce_touching=7",
                  "++study.epochs_by_arm.ce_phase=7") == long
    assert top == max(unet_3d, epochs("experiment=claims/c17_tversky"))  # no arm above it
    source = epochs("experiment=claims/c10_source")
    finetune = epochs("experiment=claims/c10_transfer", "study.start=transfer_long")
    assert finetune == int(cfg.study.finetune_epochs) > epochs("experiment=claims/c10_transfer", "study.start=transfer")
    assert epochs("experiment=claims/c10_transfer", "study.start=scratch_total") == source + finetune  # C10a
    assert epochs("experiment=claims/c10_transfer", "study.start=scratch") == int(cfg.study.short_epochs)  # C10b


@pytest.mark.slow  # composes every job of five claims: 11 s of CPU
def test_study_plan_trains_each_shared_run_once_and_orders_dependencies():
    jobs = study.plan(["C2", "C4", "C5", "C3", "C10"], "cpu")
    names = [j.name for j in jobs]
    assert names.count("unet-dice_ce-2d-seed0") == 1
    assert next(j for j in jobs if j.name == "unet-dice_ce-2d-seed0").claims == {"C2", "C4", "C5"}
    transfer = next(j for j in jobs if j.name.endswith("-transfer"))
    assert [p.name for p in transfer.after] == ["unet-dice_ce-2d-synthetic"]
    assert any(o.endswith("claims_sources/unet-dice_ce-2d-synthetic/checkpoints/best.ckpt")
               for o in [str(compose_with_context("train", transfer.overrides)[0].model.pretrained)])
    finetuned = next(j for j in jobs if j.name.endswith("-transfer_long"))  # C10a's arm: the same source
    assert [p.name for p in finetuned.after] == ["unet-dice_ce-2d-synthetic"]
    crf = next(j for j in jobs if j.name.endswith("-eval-crf"))
    assert crf.task == "eval" and "postprocess=crf" in crf.overrides
    # its CRF weights: the best of the grid on the run's validation cases (tuning folder), decided when it starts
    assert crf.lazy is not None and len(crf.after) == len(study.CRF_GRID) == 4
    val = next(j for j in jobs if j.run_dir == crf.after[0])
    assert val.task == "eval" and {"split=val", "postprocess=crf", "crf.bilateral_weight=3"} <= set(val.overrides)
    assert val.run_dir.parent.name == "claims_tuning" and val.after == [crf.after[0].parent.parent / "claims" /
                                                                         crf.name.removesuffix("-eval-crf")]
    assert "split=val" not in next(j for j in jobs if j.name.endswith("-eval-null")).overrides


@pytest.mark.slow  # composes C14's 12 trainings: 4 s of CPU
def test_c14_trains_the_deeplab_runs_of_c3_and_c15_without_their_crf_evaluations():
    jobs = study.plan(["C14"], "cpu")
    assert {j.task for j in jobs} == {"train"} and len(jobs) == 12
    assert {"deeplabv1-dice_ce-2d-seed0", "deeplabv3p-dice_ce-2d-seed2"} <= {j.name for j in jobs}
    with_c3 = study.plan(["C14", "C3"], "cpu")
    assert sum(j.task == "eval" for j in with_c3) == 3 * (2 + len(study.CRF_GRID))
    assert next(j for j in with_c3 if j.name == "deeplabv1-dice_ce-2d-seed0").claims == {"C3", "C14"}


def test_crop_ratios_centre_patches_on_the_weighted_class():
    from ctbench.data.transforms import train_chain

    label = torch.zeros(1, 40, 40, 40, dtype=torch.uint8)
    label[0, 30:33, 30:33, 30:33] = 1  # a 3-voxel lesion in a corner
    pre = {"orientation": "RAS", "spacing": [1.0, 1.0, 1.0], "window": [-100, 100], "normalize": "window",
           "crop_foreground": False}
    chain = train_chain(pre, [8, 8, 8], 2, 50, crop_ratios=[0, 1])
    # drop the loading/orienting/resampling steps: feed arrays directly from the padding step on
    from monai.transforms import Compose

    start = next(i for i, t in enumerate(chain.transforms) if type(t).__name__ == "SpatialPadd")
    sampler = Compose(chain.transforms[start:])
    sampler.set_random_state(seed=0)
    patches = sampler({"image": torch.zeros(1, 40, 40, 40), "label": label})
    assert all(p["label"].sum() > 0 for p in patches)  # every patch holds lesion voxels


def test_bad_crop_ratios_are_one_line():
    from ctbench.data.datamodule import CTDataModule

    cfg = compose_with_context("train", ["dataset=phantom_tiny", "+dataset.crop_ratios=[1,1]"])[0]
    with pytest.raises(CTBenchError, match=r"dataset.crop_ratios \[1.0, 1.0\]: give one weight >= 0 per class \(5"):
        CTDataModule(cfg.dataset, 3, 0, "/tmp/unused")


def test_study_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as done:
        main(["study", "--help"])
    assert done.value.code == 0 and "study=cpu|full" in capsys.readouterr().out
    assert main(["study", "run", "study=gpu"]) == 2
    assert main(["study", "report", "--only", "C99"]) == 2
    assert main(["study", "run", "--deadline", "tonight"]) == 2
    err = capsys.readouterr().err
    assert "study=gpu: give study=cpu or study=full" in err and "--only C99: unknown claim" in err
    assert "--deadline tonight: give a duration (90m, 2h, 2h30m) or a clock time (18:45)" in err


def test_a_report_removes_the_figures_of_a_shown_claim_whose_runs_are_gone(runs, tmp_path, monkeypatch):
    """C13's runs were removed (to train at more epochs): its per-case and learning-curve figures from an
    earlier report go from the doc's folder and the report folder; C25's, not shown, stay."""
    import shutil

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "plan", lambda claims, preset: [])
    shutil.copytree(runs, tmp_path / "multirun" / "claims")
    folders = [tmp_path / "doc", tmp_path / "multirun" / "claims" / "report" / "figures",
               tmp_path / "multirun" / "claims" / "report" / "learning_curves"]
    stale = [f"{p}{c}.png" for p in ("", "learning_curves_")
             for c in ("C13-fcdensenet-vs-unet-dice", "C25-dynunet-vs-swinunetr-dice")]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for name in stale:
            (folder / name).write_bytes(b"old")
    assert main(["study", "report", "--only", "C13", "--doc", "doc.md"]) == 0
    assert "not evaluable" in (tmp_path / "doc.md").read_text()
    for folder in folders:
        assert sorted(p.name for p in folder.glob("*C*.png")) == sorted(n for n in stale if "C25" in n), folder


def test_study_report_judges_every_claim_file_and_shows_the_selection(runs, tmp_path, monkeypatch):
    """``ctbench study report --only C8`` on a study folder holding C8-like runs: the family is every claim
    file of configs/claims, the doc and claims.md show C8 only."""
    import shutil

    monkeypatch.chdir(tmp_path)
    planned = [_train_job("segnet-dice-2d-seed0", 10)]  # the whole study's jobs: one left, not measured
    monkeypatch.setattr(study, "plan", lambda claims, preset: planned)
    monkeypatch.setattr(study, "finished_with_another_config", lambda jobs: [])
    shutil.copytree(runs, tmp_path / "multirun" / "claims")
    table = sorted((tmp_path / "multirun" / "claims").glob("*/report/per_case.csv"))[0]
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with table.open("w", newline="") as fh:  # voxel counts in one run: the volume-ratio table has its arm alone
        writer = csv.DictWriter(fh, [*rows[0], "truth_voxels", "pred_voxels"])
        writer.writeheader()
        writer.writerows({**row, "truth_voxels": 10, "pred_voxels": 30} for row in rows)
    assert main(["study", "report", "--only", "C8", "--doc", "doc.md"]) == 0
    doc = (tmp_path / "doc.md").read_text()
    arm = table.parents[1].name.replace("-seed0", "-seedN")
    assert f"| `{arm}` | 1 | " + " | ".join(["**3**"] * len({row["class"] for row in rows})) + " |" in doc
    assert "; still to run: 1 job; 0 of them expected to take 0.0 h of job time (0.0 h with --jobs 2)" in doc
    claims_md = (tmp_path / "multirun" / "claims" / "report" / "claims.md").read_text()
    family = len(load_claims(CONFIG_DIR / "claims"))
    assert f"1 of {family} claim(s) shown" in claims_md and f"the family is the {family} claim(s)" in doc
    assert "| C8-combo-stability |" in doc and "C7a" not in doc
    with (tmp_path / "multirun" / "claims" / "report" / "claims.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == family  # every claim judged, whatever --only shows


@pytest.mark.slow
def test_study_help_from_a_non_editable_install(tmp_path):
    """A wheel built from a copy of the project carries the claim files and experiments, and
    ``ctbench study`` answers from it (no source checkout on the path)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    project = tmp_path / "project"
    for name in ("src", "configs"):
        shutil.copytree(root / name, project / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, project / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(project),
                    "-w", str(tmp_path / "wheel")], check=True, cwd=tmp_path)
    wheel, = (tmp_path / "wheel").glob("ctbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sum(n.startswith("ctbench/configs/claims/") for n in names) == len(list((root / "configs" / "claims").glob("*.yaml")))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", "import ctbench, sys; from ctbench.cli import main; "
                          "print(ctbench.__file__); sys.exit(main(['study', 'run', '--dry-run', '--only', 'C8']))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    # C8's Combo and Dice arms: 3 seeds each plus 2 more learning rates of each arm's seed 0
    assert out.startswith(str(tmp_path / "site")) and "12 jobs for C8" in out


def test_a_rerun_finishes_an_interrupted_study(tmp_path, monkeypatch):
    """Two jobs, the second after the first; the first run is interrupted (exit 1, no report): a rerun skips
    nothing complete, trains both with ``resume=true``, in order, and records their times."""
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []
    interrupted = {"first": True}

    def fake_ctbench(cmd, env, log_file):
        calls.append(cmd)
        run_dir = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        if run_dir.name == "a" and interrupted.pop("first", False):
            run_dir.mkdir(parents=True, exist_ok=True)
            return 1, 0.0  # killed before its report
        (run_dir / "report").mkdir(parents=True, exist_ok=True)
        (run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
        return 0, 1.0

    monkeypatch.setattr(study, "spawn", fake_ctbench)
    jobs = lambda: [study.Job("a", "train", ["x=1"], Path("runs/a")),  # noqa: E731
                    study.Job("b", "train", ["x=2"], Path("runs/b"), after=[Path("runs/a")])]
    first = jobs()
    study.run_jobs(first, 2, False, tmp_path, tmp_path / "logs")
    assert [j.status for j in first] == ["failed", "failed"] and len(calls) == 1  # b waits for a, a failed
    second = jobs()
    study.run_jobs(second, 2, False, tmp_path, tmp_path / "logs")
    assert [j.status for j in second] == ["done", "done"]
    assert [c[-2:] for c in calls[1:]] == [["hydra.run.dir=runs/a", "resume=true"], ["hydra.run.dir=runs/b", "resume=true"]]
    third = jobs()
    study.run_jobs(third, 2, False, tmp_path, tmp_path / "logs")
    assert [j.status for j in third] == ["skipped", "skipped"] and len(calls) == 3
    times = json.loads((tmp_path / "study_jobs.json").read_text())
    assert set(times) == {"runs/a", "runs/b"}
    # a's failed attempt stays counted: two segments, CPU 0 + 1 s; b ran once
    assert [s["cpu_seconds"] for s in times["runs/a"]["segments"]] == [0.0, 1.0]
    assert times["runs/a"]["cpu_seconds"] == 1.0 and len(times["runs/b"]["segments"]) == 1


def completing_spawn(started: list[str] | None = None, cpu_seconds: float = 1.0):
    """A stand-in for :func:`study.spawn` whose ``ctbench`` run completes at once: it writes the run's report,
    appends the run folder's name to ``started`` and returns exit 0 with ``cpu_seconds``."""
    def spawn(cmd, env, log_file):
        run_dir = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        if started is not None:
            started.append(run_dir.name)
        (run_dir / "report").mkdir(parents=True, exist_ok=True)
        (run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
        return 0, cpu_seconds

    return spawn


def test_an_interrupted_job_starts_before_the_jobs_ahead_of_it(tmp_path, monkeypatch):
    """A restarted study runs the job it interrupted (checkpoint on disk) before the jobs listed ahead of it,
    then the rest in order; a job that waits for another still waits."""
    monkeypatch.chdir(tmp_path)
    order: list[str] = []
    monkeypatch.setattr(study, "spawn", completing_spawn(order))
    for name in ("c", "d"):
        Path(f"runs/{name}/checkpoints").mkdir(parents=True)
        Path(f"runs/{name}/checkpoints/last.ckpt").write_bytes(b"weights")
    jobs = [study.Job("a", "train", ["x=1"], Path("runs/a")), study.Job("b", "train", ["x=2"], Path("runs/b")),
            study.Job("c", "train", ["x=3"], Path("runs/c")),
            study.Job("d", "train", ["x=4"], Path("runs/d"), after=[Path("runs/b")])]
    study.run_jobs(jobs, 1, False, tmp_path, tmp_path / "logs")
    assert order == ["c", "a", "b", "d"] and {j.status for j in jobs} == {"done"}
    # the study's wall time: one span per `study run`, closed when it ends
    span, = json.loads((tmp_path / study.RUNS_FILE).read_text())
    assert span["finished"] and span["jobs"] == 4 and span["workers"] == 1 and span["ended"] >= span["started"]
    study.run_jobs([], 2, False, tmp_path, tmp_path / "logs")
    assert study.study_wall_seconds(tmp_path)[0] == 2


def test_a_job_resumed_after_a_killed_study_counts_the_killed_segment(tmp_path, monkeypatch):
    """A study killed mid-job leaves its record ``running``; the resumed job's time adds that segment, closed
    at the log's last write (CPU unknown), to its own; so does a complete run resumed from its checkpoint after
    its report was removed; a job whose run folder is gone, or whose record is of a complete run whose folder
    was emptied, starts its count afresh."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "spawn", completing_spawn(cpu_seconds=2.0))
    started = 1_700_000_000.0
    Path("runs/a").mkdir(parents=True)
    Path("runs/replaced").mkdir(parents=True)
    Path("runs/reported_again/checkpoints").mkdir(parents=True)
    Path("runs/reported_again/checkpoints/last.ckpt").write_bytes(b"weights")  # summary.json removed
    killed = {"task": "train", "overrides": ["x=1"], "status": "running", "seconds": 30.0, "cpu_seconds": 25.0,
              "segments": [{"seconds": 30.0, "cpu_seconds": 25.0}], "claims": [], "started": started,
              "folder_inode": Path("runs/a").stat().st_ino}
    done = {**killed, "status": "done", "folder_inode": Path("runs/replaced").stat().st_ino}
    reported = {**killed, "status": "done", "folder_inode": Path("runs/reported_again").stat().st_ino}
    (tmp_path / "study_jobs.json").write_text(json.dumps({"runs/a": killed, "runs/gone": killed,
                                                          "runs/replaced": done, "runs/reported_again": reported}))
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "a.log"
    log.write_text("epoch 7\n")
    os.utime(log, (started + 600.0, started + 600.0))  # the killed segment's last output, 10 min in
    jobs = [study.Job("a", "train", ["x=1"], Path("runs/a")), study.Job("gone", "train", ["x=1"], Path("runs/gone")),
            study.Job("replaced", "train", ["x=1"], Path("runs/replaced")),  # a done run's folder, emptied
            study.Job("reported_again", "train", ["x=1"], Path("runs/reported_again"))]
    study.run_jobs(jobs, 1, False, tmp_path, tmp_path / "logs")
    times = json.loads((tmp_path / "study_jobs.json").read_text())
    a = times["runs/a"]
    assert a["status"] == "done" and [s["cpu_seconds"] for s in a["segments"]] == [25.0, None, 2.0]
    assert a["segments"][1]["seconds"] == 600.0 and 630.0 <= a["seconds"] < 640.0 and a["cpu_seconds"] == 27.0
    assert log.read_text().startswith("epoch 7")  # the earlier segment's output is kept
    assert len(times["runs/gone"]["segments"]) == 1 and times["runs/gone"]["cpu_seconds"] == 2.0
    assert len(times["runs/replaced"]["segments"]) == 1
    # the two records whose time the new start does not carry are kept apart, counted in the report's header
    retired = json.loads((tmp_path / study.RETIRED_FILE).read_text())
    assert [(r["run_dir"], r["seconds"], r["status"]) for r in retired] == [("runs/gone", 30.0, "running"),
                                                                           ("runs/replaced", 30.0, "done")]
    assert study.retired_seconds(tmp_path) == 60.0
    again = times["runs/reported_again"]
    assert again["segments"][0] == {"seconds": 30.0, "cpu_seconds": 25.0} and len(again["segments"]) == 2
    assert again["cpu_seconds"] == 27.0
    assert a["folder_inode"] == Path("runs/a").stat().st_ino


def test_a_run_that_finished_while_its_study_was_killed_is_recorded_done_with_its_segments(tmp_path, monkeypatch):
    """The job's ``ctbench train`` wrote its report, then the study was killed before it recorded the job: the
    next study skips the complete run and closes its ``running`` record as ``done``, the killed segment ending
    at the log's last write, instead of leaving it ``running`` without that segment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "spawn", lambda *a: pytest.fail("a complete run is not trained again"))
    started = 1_700_000_000.0
    Path("runs/a/report").mkdir(parents=True)
    Path("runs/a/report/summary.json").write_text(json.dumps({"status": "complete"}))
    killed = {"task": "train", "overrides": ["x=1"], "status": "running", "seconds": 30.0, "cpu_seconds": 25.0,
              "segments": [{"seconds": 30.0, "cpu_seconds": 25.0}], "claims": [], "started": started,
              "folder_inode": Path("runs/a").stat().st_ino}
    (tmp_path / "study_jobs.json").write_text(json.dumps({"runs/a": killed}))
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "a.log"
    log.write_text("report: runs/a/report\n")
    os.utime(log, (started + 900.0, started + 900.0))
    jobs = [study.Job("a", "train", ["x=1"], Path("runs/a"))]
    study.run_jobs(jobs, 1, False, tmp_path, tmp_path / "logs")
    a = json.loads((tmp_path / "study_jobs.json").read_text())["runs/a"]
    assert jobs[0].status == "skipped" and a["status"] == "done"
    assert a["segments"] == [{"seconds": 30.0, "cpu_seconds": 25.0}, {"seconds": 900.0, "cpu_seconds": None}]
    assert a["seconds"] == 930.0 and "started" not in a
    study.run_jobs([study.Job("a", "train", ["x=1"], Path("runs/a"))], 1, False, tmp_path, tmp_path / "logs")
    assert json.loads((tmp_path / "study_jobs.json").read_text())["runs/a"] == a  # closed once, not again


def test_claim_files_select_models_and_losses_ctbench_has():
    """Fast: every claim side names a model and loss of configs/ and every claim's experiments exist."""
    models, losses = set(group_choices("model")), set(group_choices("loss"))
    for claim in load_claims(CONFIG_DIR / "claims"):
        for side in (claim.candidate, claim.baseline):
            assert side.get("model", "unet") in models and side.get("loss", "dice") in losses, claim.id
        assert set(study.CLAIMS[study.claim_key(claim.id)][2]) <= set(group_choices("experiment/claims")), claim.id


def _job_attributes(jobs: list[study.Job], composed: dict[tuple[str, ...], tuple]) -> list[dict]:
    """What :meth:`ctbench.reports.collect.Run.attribute` will read from each job's run: model and loss, the
    summary fields a selector uses (dims, seed), the job's overrides, else its composed config."""
    from omegaconf import OmegaConf

    out = []
    for job in jobs:
        cfg, ctx = composed.get(tuple(job.overrides)) or compose_with_context(job.task, job.overrides)
        overrides = dict(o.split("=", 1) for o in job.overrides)

        def attribute(key: str, cfg=cfg, ctx=ctx, overrides=overrides) -> str | None:
            if key in ("model", "loss"):
                return overrides.get(key) or ctx.choices.get(key)
            if key in overrides:
                return overrides[key]
            value = OmegaConf.select(cfg, key, default=None)
            return "null" if value is None and key == "postprocess" else None if value is None else str(value)

        out.append({"job": job, "attribute": attribute})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["cpu", "full"])
def test_every_claim_side_is_three_seeds_of_one_arm_the_study_runs(preset, monkeypatch):
    """Every claim experiment composes at both sizes through ``study.plan`` (ctbench's own compose), and each
    side of every claim file selects exactly the 3 seeds (0, 1, 2) of one arm among the jobs the study runs:
    no selector names a run that no experiment produces, and no side mixes arms (~50 s per preset)."""
    import ctbench.config

    composed: dict[tuple[str, ...], tuple] = {}
    compose = ctbench.config.compose_with_context

    def remember(task, overrides=()):
        composed[tuple(overrides)] = result = compose(task, overrides)
        return result

    monkeypatch.setattr(ctbench.config, "compose_with_context", remember)
    jobs = study.plan(list(study.CLAIMS), preset)
    monkeypatch.setattr(ctbench.config, "compose_with_context", compose)
    assert len({j.run_dir for j in jobs}) == len(jobs)
    study_dir = "claims" if preset == "cpu" else "claims_full"
    assert all(j.run_dir.parent.name in (study_dir, f"{study_dir}_tuning", f"{study_dir}_sources") for j in jobs)
    # the tuning runs (learning-rate grid, CRF weights on the validation cases) are outside what the claims read
    runs = _job_attributes([j for j in jobs if j.run_dir.parent.name != f"{study_dir}_tuning"], composed)
    for claim in load_claims(CONFIG_DIR / "claims"):
        sides = [[r for r in runs if all(r["attribute"](k) == v for k, v in side.items())]
                 for side in (claim.candidate, claim.baseline)]
        for side in sides:
            assert sorted(r["attribute"]("seed") for r in side) == ["0", "1", "2"], \
                (claim.id, [r["job"].name for r in side])
        # two sides of runs are disjoint; `compare: strata` compares two columns of the same runs
        shared = {r["job"].run_dir for r in sides[0]} & {r["job"].run_dir for r in sides[1]}
        assert len(shared) == (3 if claim.columns else 0), claim.id
        # the study plan of the claim's own key runs both sides (`ctbench study run --only CK`)
        own = {j.run_dir for j in jobs if study.claim_key(claim.id) in j.claims}
        assert {r["job"].run_dir for side in sides for r in side} <= own, claim.id


def write_tuning_run(folder: Path, summary: dict, config: str = "") -> Path:
    """A complete run folder as the study's tuning jobs leave it: summary.json and the run's config."""
    (folder / "report").mkdir(parents=True)
    (folder / "report" / "summary.json").write_text(json.dumps({"status": "complete", **summary}))
    (folder / "resolved_config.yaml").write_text(config)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    return folder


def lr_arm(tmp_path: Path, curves: dict[str, list[float]]) -> study.LRArm:
    grid = {rate: write_tuning_run(tmp_path / "claims_tuning" / f"unet-focal-2d-seed0-lr{rate}",
                                   {"convergence": {"history": [[5 * i, v] for i, v in enumerate(curve)]}},
                                   f"optim:\n  optimizer:\n    lr: {rate}\n")
            for rate, curve in curves.items()}
    return study.LRArm("unet-focal-2d-seed0", tmp_path / "claims" / "unet-focal-2d-seed0", grid, "0.003",
                       tmp_path / "claims" / "lr_choice.json")


def test_lr_choice_is_the_best_validation_dice_of_seed_0_recorded_and_reused(tmp_path):
    """The best over each run's learning curve (not its last value) decides; a NaN validation is skipped; the
    choice is recorded and a resumed study reads it back even if the runs changed since; seed 0 at the chosen
    rate is that grid run, linked (the same files), not trained again."""
    arm = lr_arm(tmp_path, {"0.001": [0.2, 0.5, 0.55], "0.003": [0.3, 0.6, 0.58], "0.009": [0.1, float("nan"), 0.59]})
    (tmp_path / "claims").mkdir()
    assert arm.override() == ["optim.optimizer.lr=0.003"]
    record = json.loads((tmp_path / "claims" / "lr_choice.json").read_text())["unet-focal-2d-seed0"]
    assert record["validation"] == {"0.001": 0.55, "0.003": 0.6, "0.009": 0.59} and record["chosen"] == "0.003"
    assert record["configured"] == "0.003" and record["runs"]["0.009"].endswith("seed0-lr0.009")
    assert "| unet-focal-2d-seed0 | 0.001: 0.550, 0.003: 0.600, 0.009: 0.590 | **0.003** | |" \
        in study.choice_lines(tmp_path / "claims")  # the study's doc section shows the choice
    (arm.grid["0.001"] / "report" / "summary.json").write_text(json.dumps(
        {"status": "complete", "convergence": {"history": [[0, 0.9]]}}))
    assert arm.seed_zero() == ["optim.optimizer.lr=0.003"]  # recorded: not chosen again
    linked = arm.seed0 / "checkpoints" / "best.ckpt"
    assert linked.read_bytes() == b"weights"
    assert linked.stat().st_ino == (arm.grid["0.003"] / "checkpoints" / "best.ckpt").stat().st_ino
    study.check_recorded(arm.seed0, arm.override())  # its config holds the chosen rate
    with pytest.raises(CTBenchError, match=r"complete with optim.optimizer.lr=0.003, not the chosen 0.009"):
        study.check_recorded(arm.seed0, ["optim.optimizer.lr=0.009"])


def test_a_learning_rate_chosen_at_the_grid_edge_is_marked_in_the_doc(tmp_path):
    """The doc's learning-rate table says when the chosen rate is the grid's lowest or highest (a better rate may
    lie outside the grid), compared as numbers, not strings, with its lead over the next rate against the arm's
    seed SD at the chosen rate (seeds 0.60, 0.62, 0.64: SD 0.02; lead 0.10: 5 SD); an inner choice and a CRF
    choice are not marked."""
    (tmp_path / "lr_choice.json").write_text(json.dumps({
        "unet-low-2d-seed0": {"validation": {"0.001": 0.6, "0.003": 0.5, "0.009": 0.4}, "chosen": "0.001"},
        "high": {"validation": {"0.0009": 0.4, "0.003": 0.5, "1e-2": 0.6}, "chosen": "1e-2"},
        "inner": {"validation": {"0.001": 0.4, "0.003": 0.6, "0.009": 0.5}, "chosen": "0.003"}}))
    (tmp_path / "crf_choice.json").write_text(json.dumps({"run": {"validation": {"3": 0.5, "6": 0.6}, "chosen": "6"}}))
    for seed, best in enumerate((0.6, 0.62, 0.64)):
        report = tmp_path / f"unet-low-2d-seed{seed}" / "report"
        report.mkdir(parents=True)
        (report / "summary.json").write_text(json.dumps(
            {"status": "complete", "convergence": {"history": [[4, best - 0.1], [9, best]]}}))
    lines = study.choice_lines(tmp_path)
    assert "| unet-low-2d-seed0 | 0.001: 0.600, 0.003: 0.500, 0.009: 0.400 | **0.001** (lowest of the grid) | " \
           "+0.100 (0.020, 3 seeds; 5.0 SD) |" in lines
    assert "| high | 0.0009: 0.400, 0.003: 0.500, 1e-2: 0.600 | **1e-2** (highest of the grid) | +0.100 (0 seeds) |" \
        in lines
    assert "| inner | 0.001: 0.400, 0.003: 0.600, 0.009: 0.500 | **0.003** | |" in lines
    assert "| run | 3: 0.500, 6: 0.600 | **6** |" in lines


def test_an_arm_whose_chosen_seed_0_is_still_improving_holds_its_other_seeds(tmp_path, monkeypatch, capsys):
    """4 Dec: C7h's focal Tversky chose 0.001, whose seed-0 run was still improving at 100 epochs; its seeds 1 and
    2 had started at 100 and were thrown away when the arm moved up a tier. Now they wait ("held", with what to do),
    a job needing one is not run, the dry run says so, nothing is recorded; a converged seed 0 lets them run."""
    monkeypatch.chdir(tmp_path)
    arm = lr_arm(tmp_path, {"0.001": [0.5, 0.6], "0.003": [0.5, 0.55], "0.009": [0.4, 0.5]})
    (tmp_path / "claims").mkdir()
    summary = arm.grid["0.001"] / "report" / "summary.json"
    improving = {"status": "complete", "epochs": 100, "convergence": {"verdict": "still improving",
                                                                       "history": [[0, 0.5], [5, 0.6]]}}
    summary.write_text(json.dumps(improving))
    assert arm.held() is None  # no rate chosen yet: the grid decides first
    arm.chosen()
    seed1 = study.Job("unet-focal-2d-seed1", "train", ["x=1"], tmp_path / "claims" / "unet-focal-2d-seed1",
                      lazy=arm.override, held=arm.held)
    after = study.Job("eval", "eval", ["x=2"], tmp_path / "claims" / "eval", after=[seed1.run_dir])
    monkeypatch.setattr(study, "spawn", lambda *a: pytest.fail("a held seed is not trained"))
    study.run_jobs([seed1, after], 2, False, tmp_path / "claims", tmp_path / "logs")
    out = capsys.readouterr().out
    assert (seed1.status, after.status) == ("held", "held")
    assert "unet-focal-2d-seed0-lr0.001) is still improving at 100 epochs: move the arm up a tier" in out
    assert "(scripts/move_arm_up_a_tier.py unet-focal-2d), and rerun" in out
    assert "eval: not run, a job it needs is held" in out
    assert not (tmp_path / "claims" / "study_jobs.json").exists() or \
        str(seed1.run_dir) not in json.loads((tmp_path / "claims" / "study_jobs.json").read_text())
    note, seconds, bound = study.what_is_left(study.Job("s2", "train", [], tmp_path / "s2", held=arm.held), [], {},
                                              tmp_path / "logs")
    assert note.startswith("held: its arm's seed 0") and seconds is None and bound is None
    summary.write_text(json.dumps({**improving, "convergence": {"verdict": "converged", "history": [[0, 0.6]]}}))
    assert arm.held() is None
    # at the preset's top tier the arm moves no higher: its claims read not evaluable, no move is suggested
    summary.write_text(json.dumps(improving))
    arm.top_epochs = 100
    assert "at 100 epochs, the preset's top tier (study.top_epochs)" in arm.held()
    assert "move_arm_up_a_tier" not in arm.held() and "not evaluable" in arm.held()
    arm.top_epochs = 250
    assert "move the arm up a tier" in arm.held()
    # seed 0 converged, seed 1 complete and still improving at the top tier (C23's conservative loss, 4 Dec): the
    # arm is beyond the budget as well, so its seed 2 and every job only its claims need wait
    summary.write_text(json.dumps({**improving, "epochs": 250, "convergence": {"verdict": "converged",
                                                                               "history": [[0, 0.6]]}}))
    seed1_report = arm.seed_runs()[0] / "report"
    seed1_report.mkdir(parents=True)
    (seed1_report / "summary.json").write_text(json.dumps({**improving, "epochs": 250}))
    assert arm.seed_runs()[0].name == "unet-focal-2d-seed1" and arm.unconverged() is None
    assert "its arm's seed 1 (" in arm.held() and "still improving at 250 epochs, the preset's top tier" in arm.held()
    arm.top_epochs = 300
    assert arm.held() is None and arm.beyond_budget() is None


def test_a_job_whose_every_claim_has_an_arm_beyond_the_budget_is_held(tmp_path, monkeypatch, capsys):
    """4 Dec 20:20: C22's distance-weighted arm (w0 10) was still improving at 250 epochs, the top tier, and it is
    a side of all three C22 claims; the w0 0 grid and CE's seeds could change no verdict but would have taken an
    hour. Such a job is held with the reason; a job with one claim still open runs; before the arm reaches the
    top tier nothing is held; a job on no claim side is never held."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from ctbench.reports.claims import parse_claim

    monkeypatch.chdir(tmp_path)
    arm = lr_arm(tmp_path, {"0.001": [0.5, 0.6], "0.003": [0.5, 0.55], "0.009": [0.4, 0.5]})
    (tmp_path / "claims").mkdir()
    (arm.grid["0.001"] / "report" / "summary.json").write_text(json.dumps(
        {"status": "complete", "epochs": 250, "convergence": {"verdict": "still improving", "history": [[0, 0.6]]}}))
    arm.chosen()
    arm.top_epochs = 250

    def job(name: str, loss: str, tag: str, arm_of: study.LRArm | None = None) -> study.Job:
        cfg = OmegaConf.create({"dims": 2, "study": {"tag": tag}})
        return study.Job(name, "train", [f"loss={loss}", "seed=1"], tmp_path / "claims" / name,
                         composed=(cfg, SimpleNamespace(choices={"model": "unet", "loss": loss})), arm=arm_of)

    def claim(cid: str, candidate: dict, baseline: dict, metric: str = "dice"):
        return parse_claim(Path(f"{cid}.yaml"), {"id": cid, "claim": "x", "where": {"model": "unet", "dims": 2},
                                                  "candidate": candidate, "baseline": baseline, "metric": metric,
                                                  "expect": "higher"})

    weighted = job("w10-seed1", "unet_weighted", "-w10", arm)
    ablation, ce, other = job("w0-seed1", "unet_weighted", "-w0"), job("ce-seed1", "ce", ""), job("x", "dice", "")
    jobs = [weighted, ablation, ce, other]
    claims = [claim("C22a-x", {"loss": "unet_weighted", "study.tag": "-w10"}, {"loss": "ce", "study.tag": ""}),
              claim("C22c-x", {"study.tag": "-w10"}, {"study.tag": "-w0"}),
              claim("C18a-x", {"loss": "ce", "study.tag": ""}, {"loss": "dice"})]
    assert study.moot(weighted, claims, jobs, arm.held).endswith("its other seeds are not trained")  # its own arm
    reason = study.moot(ablation, claims, jobs, None)
    assert reason.startswith("every claim it serves (C22c) reads not evaluable whatever it gives: an arm's seed 0")
    assert "still improving at 250 epochs, the preset's top tier" in reason
    assert study.moot(ce, claims, jobs, None) is None  # C18a still needs it
    assert study.moot(ce, claims[:2], jobs, None).startswith("every claim it serves (C22a) reads not evaluable")
    assert study.moot(other, claims[:2], jobs, None) is None  # on no side of these claims
    arm.top_epochs = 300  # below the top tier the arm moves up: its runs will change, nothing else is held
    assert study.moot(ablation, claims, jobs, None) is None
    arm.top_epochs = 250
    ablation.held = functools.partial(study.moot, ablation, claims, jobs, None)
    monkeypatch.setattr(study, "spawn", lambda *a: pytest.fail("a job that can change no verdict is not trained"))
    study.run_jobs([ablation], 1, False, tmp_path / "claims", tmp_path / "logs")
    assert ablation.status == "held" and "w0-seed1: not run, every claim it serves (C22c)" in capsys.readouterr().out


def test_lr_ties_go_to_the_configured_rate_and_a_run_without_validations_is_one_line(tmp_path):
    assert study.choose({"0.001": 0.5, "0.003": 0.5, "0.009": 0.4}, "0.003") == "0.003"
    assert study.choose({"0.001": 0.5, "0.003": 0.4, "0.009": 0.5}, "0.003") == "0.001"
    arm = lr_arm(tmp_path, {"0.001": [0.2], "0.003": [], "0.009": [0.1]})
    with pytest.raises(CTBenchError, match="no validation value"):
        arm.chosen()
    assert not (tmp_path / "claims" / "lr_choice.json").exists()  # nothing recorded without a choice


def test_crf_weights_are_chosen_on_the_validation_mean_dice_and_recorded(tmp_path):
    scores = dict(zip(study.CRF_GRID, [0.71, 0.74, 0.69, 0.74], strict=True))  # a tie: the first setting wins
    tuning = study.CRFTuning("deeplabv1-dice_ce-2d-seed0", {
        label: write_tuning_run(tmp_path / f"val-{label}", {"mean_dice": v, "split": "val"})
        for label, v in scores.items()}, tmp_path / "crf_choice.json")
    assert tuning.override() == ["crf.bilateral_weight=3", "crf.bilateral_sigma=30"]
    record = json.loads((tmp_path / "crf_choice.json").read_text())["deeplabv1-dice_ce-2d-seed0"]
    assert record["chosen"] == "wb3-sa30mm" and record["validation"] == scores


def test_a_recorded_choice_makes_its_tuning_runs_unneeded(tmp_path, monkeypatch):
    """A fresh clone has the committed lr_choice.json / crf_choice.json but not the tuning runs' weights:
    once a choice is recorded its tuning runs are not trained or tested again (they failed there without the
    checkpoints, or retrained the learning-rate grid), except the chosen rate's while the arm's seed-0 folder,
    linked from it, is missing."""
    arm = lr_arm(tmp_path, {"0.001": [0.5], "0.003": [0.6], "0.009": [0.4]})
    (tmp_path / "claims").mkdir()
    assert all(arm.needs(rate) for rate in arm.grid)  # nothing recorded yet
    arm.chosen()
    assert [arm.needs(rate) for rate in arm.grid] == [False, True, False]  # seed 0 is not linked yet
    arm.seed_zero()
    assert not any(arm.needs(rate) for rate in arm.grid)
    tuning = study.CRFTuning("deeplabv1-dice_ce-2d-seed0", {"wb3-sa10mm": tmp_path / "claims_tuning" / "val"},
                             tmp_path / "claims" / "crf_choice.json")
    assert tuning.needed()
    (tmp_path / "claims" / "crf_choice.json").write_text(json.dumps(
        {"deeplabv1-dice_ce-2d-seed0": {"chosen": "wb3-sa10mm", "settings": study.CRF_GRID["wb3-sa10mm"]}}))
    assert not tuning.needed()
    spawned: list[list[str]] = []
    monkeypatch.setattr(study, "spawn", lambda cmd, env, log: spawned.append(cmd) or (1, 0.0))
    val = study.Job("val", "eval", ["x=1"], tmp_path / "claims_tuning" / "val", needed=tuning.needed)
    crf = study.Job("crf", "eval", ["x=2"], tmp_path / "claims" / "crf", after=[val.run_dir], lazy=tuning.override)
    write_tuning_run(crf.run_dir, {}, "crf:\n  bilateral_weight: 3\n  bilateral_sigma: 10\n")  # complete
    study.run_jobs([val, crf], 1, False, tmp_path / "claims", tmp_path / "logs")
    assert [val.status, crf.status] == ["skipped", "skipped"] and spawned == []


def test_a_lazy_override_is_decided_when_its_job_starts(tmp_path, monkeypatch):
    """The job after the grid gets the override its ``lazy`` returns once the grid ran; a complete run of
    another choice fails the job with the one-line reason (nothing is overwritten); a failing choice too."""
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []

    def fake_ctbench(cmd, env, log_file):
        calls.append(cmd)
        run_dir = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        (run_dir / "report").mkdir(parents=True)
        (run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
        return 0, 1.0

    monkeypatch.setattr(study, "spawn", fake_ctbench)
    decided = lambda: [f"lr={len(calls)}"]  # noqa: E731 - what the grid left when the job starts
    jobs = [study.Job("grid", "train", ["x=1"], Path("runs/grid")),
            study.Job("arm", "train", ["x=2"], Path("runs/arm"), after=[Path("runs/grid")], lazy=decided)]
    study.run_jobs(jobs, 2, False, tmp_path, tmp_path / "logs")
    assert [j.status for j in jobs] == ["done", "done"] and calls[1][1:4] == ["train", "x=2", "lr=1"]
    (tmp_path / "runs" / "arm" / "resolved_config.yaml").write_text("lr: 1\n")
    again = [study.Job("arm", "train", ["x=2"], Path("runs/arm"), lazy=lambda: ["lr=5"])]
    study.run_jobs(again, 1, False, tmp_path, tmp_path / "logs")
    assert again[0].status == "failed" and len(calls) == 2

    def no_choice() -> list[str]:
        raise CTBenchError("runs/grid: summary.json has no validation value")

    failing = [study.Job("other", "train", ["x=3"], Path("runs/other"), lazy=no_choice)]
    study.run_jobs(failing, 1, False, tmp_path, tmp_path / "logs")
    assert failing[0].status == "failed" and len(calls) == 2


@pytest.mark.slow
def test_study_plan_tunes_each_loss_arms_learning_rate_on_seed_0():
    """C18's loss arms: seed 0 at 3 rates in the tuning folder, then seeds 0-2 at the chosen one (lazy) (~7 s)."""
    jobs = {j.name: j for j in study.plan(["C18"], "cpu")}
    grid = [f"unet-dice-2d-seed0-lr{r}" for r in ("0.001", "0.003", "0.009")]
    assert all(jobs[g].run_dir.parent.name == "claims_tuning" and jobs[g].lazy is None for g in grid)
    assert jobs[grid[2]].overrides[-1] == "optim.optimizer.lr=0.009"
    for seed in range(3):
        job = jobs[f"unet-dice-2d-seed{seed}"]
        assert job.run_dir.parent.name == "claims" and [p.name for p in job.after] == grid
        assert job.lazy is not None and not any(o.startswith("optim.") for o in job.overrides)


def test_a_complete_run_of_another_config_stops_the_study_before_any_job(tmp_path, monkeypatch, capsys):
    """A complete run folder that the preset no longer describes (trained 60 epochs where its network now gets
    100) is not skipped as done: ``study run`` names it and the differing key and starts nothing; the same run
    folder with the preset's config is accepted; a study's bookkeeping keys (``study.*``) do not count."""
    from omegaconf import OmegaConf

    from ctbench.engine.run import run_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study, "spawn", lambda *a: pytest.fail("a job was started"))
    jobs = study.plan(["C20"], "cpu")
    job = next(j for j in jobs if j.task == "train")
    cfg = run_config(OmegaConf.create(OmegaConf.to_container(job.composed[0])), job.composed[1])
    assert int(cfg.trainer.max_epochs) == 100  # the U-Net is one of study.epochs_by_model
    (job.run_dir / "report").mkdir(parents=True)
    (job.run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
    cfg.study.epochs_by_model = {"unet": 100}  # the preset's list as an earlier run recorded it
    (job.run_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    assert study.finished_with_another_config(jobs) == []
    cfg.trainer.max_epochs = 60
    (job.run_dir / "resolved_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    assert study.finished_with_another_config(jobs) == [f"{job.run_dir}: trainer.max_epochs: 60 -> 100"]
    assert main(["study", "run", "--only", "C20"]) == 2
    out, err = capsys.readouterr()
    assert f"{job.run_dir}: trainer.max_epochs: 60 -> 100" in out and len(err.strip().splitlines()) == 1
    assert "move them out of multirun/claims" in err


def test_an_evaluation_older_than_its_checkpoint_is_not_taken_as_done(tmp_path, monkeypatch):
    """A complete CRF evaluation of a run that was trained again since (its checkpoint is newer) is named."""
    monkeypatch.chdir(tmp_path)
    ckpt = Path("runs/a/checkpoints/best.ckpt")
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    summary = Path("runs/a-eval-null/report/summary.json")
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"status": "complete"}))
    job = study.Job("a-eval-null", "eval", [f"ckpt_path={ckpt}", "postprocess=null"], Path("runs/a-eval-null"))
    os.utime(ckpt, (1_000_000, 1_000_000))
    os.utime(summary, (2_000_000, 2_000_000))
    assert study.finished_with_another_config([job]) == []
    os.utime(ckpt, (3_000_000, 3_000_000))
    assert study.finished_with_another_config([job]) == [
        f"runs/a-eval-null: tested {ckpt} before that run was trained again"]


def test_a_job_that_cannot_be_started_fails_and_the_study_goes_on(tmp_path, monkeypatch):
    """``spawn`` raising (no executable, a log that cannot be opened) fails that job; the worker thread lives on
    (before, it died and the study waited for ever on the job it held)."""
    monkeypatch.chdir(tmp_path)

    def broken(cmd, env, log_file):
        raise PermissionError(f"{log_file}: permission denied")

    monkeypatch.setattr(study, "spawn", broken)
    jobs = [study.Job("a", "train", ["x=1"], Path("runs/a")), study.Job("b", "train", ["x=2"], Path("runs/b"))]
    study.run_jobs(jobs, 1, False, tmp_path, tmp_path / "logs")
    assert [j.status for j in jobs] == ["failed", "failed"]
    assert json.loads((tmp_path / "study_jobs.json").read_text())["runs/b"]["status"] == "failed"


def test_the_budget_does_not_count_a_loss_arms_linked_seed_0_run(tmp_path):
    """scripts/study_budget.py: a loss arm's seed 0 is its grid run at the chosen rate, linked in, so of its grid
    (3 rates), seed 0 and seed 1 only 4 trainings cost time, each 100 x 16 x (0.2 + 0.06) + 20 x 8 x 1.0 x 0.63
    + 40 x (1.0 x 0.63 + 0.74) + 30 s = 601.6 s."""
    import subprocess
    import sys

    costs = tmp_path / "costs.txt"
    costs.write_text("network params s/step s/volume\nunet 402,664 0.2 1.0\n")
    head = "C7  ctbench train experiment=claims/c7_small_losses loss=ce"
    best = "  [optim.optimizer.lr=<the best of 0.001, 0.003, 0.009 on seed 0's validation Dice>]"
    plan = tmp_path / "plan.txt"
    plan.write_text("\n".join(
        [f"{head} seed=0 optim.optimizer.lr={lr} hydra.run.dir=multirun/claims_tuning/unet-ce-2d-seed0-lr{lr} "
         "resume=true  (100 epochs)" for lr in ("0.001", "0.003", "0.009")]
        + [f"{head} seed={s} hydra.run.dir=multirun/claims/unet-ce-2d-seed{s} resume=true  (100 epochs){best}"
           for s in (0, 1)]) + "\n")
    script = Path(__file__).resolve().parents[1] / "scripts" / "study_budget.py"
    out = subprocess.run([sys.executable, str(script), str(costs), str(plan)], capture_output=True, text=True,
                         check=True).stdout
    rows = {line.split()[0] + (" grid" if "LR grid" in line else ""): line.split() for line in out.splitlines()}
    assert rows["unet grid"][3] == "3" and rows["unet"][1] == "1" and rows["all"][1] == "4"
    assert float(rows["all"][2]) == pytest.approx(4 * 601.6 / 60, abs=0.5)
    assert "not counted: 1 loss arms' seed-0 runs" in out


def test_predicted_volume_ratio_sums_the_voxels_over_the_cases_before_dividing(tmp_path):
    """scripts/predicted_volume_ratio.py: per class, the predicted voxels summed over the test cases over the true
    ones summed (not a mean of per-case ratios); a class without true voxels reads nan; folders without a report
    are skipped, and none at all is one line and a non-zero exit."""
    import subprocess
    import sys

    run = tmp_path / "unet-dice-2d-seed0"
    (run / "report").mkdir(parents=True)
    (run / "report" / "per_case.csv").write_text(
        "case,class,dice,truth_voxels,pred_voxels\n"
        "a,lesion,0.0,10,9000\na,liver,0.9,1000,900\nb,lesion,0.1,30,31000\nb,liver,0.9,3000,3300\n"
        "a,kidney,0.0,0,5\n")
    script = Path(__file__).resolve().parents[1] / "scripts" / "predicted_volume_ratio.py"
    out = subprocess.run([sys.executable, str(script), str(run), str(tmp_path / "missing")], capture_output=True,
                         text=True, check=True).stdout
    # lesion (9000 + 31000) / (10 + 30) = 1000 (the per-case ratios' mean would be 966.7); liver 4200 / 4000
    assert out.splitlines()[0] == "| run | kidney | lesion | liver |"
    assert out.splitlines()[2] == f"| {run} | nan | 1000 | 1.05 |"
    failed = subprocess.run([sys.executable, str(script), str(tmp_path / "missing")], capture_output=True, text=True)
    assert failed.returncode != 0 and "no run folder with report/per_case.csv" in failed.stderr


def test_the_volume_ratio_table_gives_each_arm_the_range_over_its_seeds_and_bolds_a_flood_or_a_miss(tmp_path):
    """ctbench.reports.volume_ratio.volume_ratio_lines (the study report's table): runs grouped by arm (the seed
    replaced by N; a check folder's runs named with their folder), per class the range over the arm's runs of the
    summed-voxel ratio, in bold outside [0.5, 2]; a run without voxel counts in its per_case.csv is left out."""
    from ctbench.reports.volume_ratio import volume_ratio_lines

    def run(path, lesion, liver):
        (path / "report").mkdir(parents=True)
        (path / "report" / "per_case.csv").write_text(
            "case,class,truth_voxels,pred_voxels\n"
            f"a,lesion,10,{lesion[0]}\nb,lesion,30,{lesion[1]}\na,liver,1000,{liver}\n")
        return path

    study_dir = tmp_path / "claims"
    runs = [run(study_dir / "unet-dice-2d-seed0", (9000, 31000), 900),  # lesion 40000 / 40 = 1000
            run(study_dir / "unet-dice-2d-seed1", (11, 29), 1100),  # lesion 1.0, liver 1.1
            run(tmp_path / "claims_dice_batch" / "unet-dice-batch-2d-seed0-lr0.003", (0, 0), 450),
            study_dir / "unet-ce-2d-seed0"]  # no report: left out
    (runs[-1] / "report").mkdir(parents=True)
    (runs[-1] / "report" / "per_case.csv").write_text("case,class,dice\na,lesion,0.5\n")  # no voxel counts
    lines = volume_ratio_lines(runs, study_dir)
    table = lines[lines.index("| arm | runs | lesion | liver |"):]
    assert table[2:] == ["| `claims_dice_batch/unet-dice-batch-2d-seedN-lr0.003` | 1 | **0** | **0.45** |",
                         "| `unet-dice-2d-seedN` | 2 | **1-1000** | 0.9-1.1 |"]
    assert volume_ratio_lines([study_dir / "unet-ce-2d-seed0"], study_dir) == []


def test_deadline_is_a_duration_or_the_next_clock_time():
    from datetime import datetime

    now = datetime(2026, 12, 4, 18, 0).timestamp()
    assert study.parse_deadline("90m", now) == now + 5400
    assert study.parse_deadline("2h30m", now) == now + 9000 and study.parse_deadline("1h", now) == now + 3600
    assert study.parse_deadline("18:45", now) == now + 45 * 60
    assert study.parse_deadline("06:15", now) == now + (12 * 60 + 15) * 60  # tomorrow morning
    for bad in ("", "soon", "25:00", "2d", "h"):
        with pytest.raises(CTBenchError, match="--deadline"):
            study.parse_deadline(bad, now)


def _train_job(name: str, epochs: int, **kwargs) -> study.Job:
    from omegaconf import OmegaConf

    return study.Job(name, "train", [f"x={name}"], Path("runs") / name,
                     composed=(OmegaConf.create({"trainer": {"max_epochs": epochs}}), None), **kwargs)


def test_a_jobs_expected_time_is_its_networks_measured_seconds_per_epoch_less_what_it_spent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = _train_job("unet-dice-2d-seed2", 40)
    old = _train_job("unet-dice-2d-seed1", 20)  # a record without its epochs, of the plan's complete run
    (old.run_dir / "report").mkdir(parents=True)
    (old.run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
    times = {"runs/unet-dice-2d-seed0": {"task": "train", "status": "done", "seconds": 100.0, "epochs": 10},  # 10 s/epoch
             "runs/unet-dice-2d-seed1": {"task": "train", "status": "done", "seconds": 300.0},  # 15 s/epoch
             "runs/unet-ce-2d-seed5": {"task": "train", "status": "done", "seconds": 900.0},  # removed: epochs unknown
             "runs/unet-ce-3d-seed0": {"task": "train", "status": "done", "seconds": 5000.0, "epochs": 10},  # 3D
             "runs/segnet-dice-2d-seed0": {"task": "train", "status": "done", "seconds": 5000.0, "epochs": 10},
             "runs/unet-focal-2d-seed0": {"task": "train", "status": "failed", "seconds": 5000.0, "epochs": 10}}
    plan = [old, job]
    log = tmp_path / "job.log"
    assert study.expected_seconds(job, plan, times, log) == pytest.approx(12.5 * 40)
    assert study.expected_seconds(_train_job("drinet-dice-2d-seed0", 5), plan, times, log) is None
    # not measured yet: as slow as the slowest measured 2D training network (SegNet, 500 s per epoch)
    assert study.expected_seconds(_train_job("drinet-dice-2d-seed0", 5), plan, times, log, slowest=True) == 2500.0
    assert study.expected_seconds(study.Job("drinet-eval", "eval", [], Path("runs/drinet-eval")), plan, times, log,
                                  slowest=True) is None  # no evaluation measured
    # resumed: 200 s of a failed segment in the same folder are spent, 300 s remain
    job.run_dir.mkdir(parents=True)
    times[str(job.run_dir)] = {"task": "train", "status": "failed", "folder_inode": job.run_dir.stat().st_ino,
                               "segments": [{"seconds": 200.0, "cpu_seconds": 190.0}]}
    assert study.expected_seconds(job, plan, times, log) == pytest.approx(300.0)
    times[str(job.run_dir)]["segments"][0]["seconds"] = 9999.0  # longer than expected: a tenth still remains
    assert study.expected_seconds(job, plan, times, log) == pytest.approx(50.0)


def test_a_deadline_defers_the_jobs_that_would_end_after_it_and_their_dependents(tmp_path, monkeypatch):
    """Seed 1 is expected to take 100 min (seed 0's measured time): with 30 min left it is not started, nor the job
    that waits for it, nor a 2D network not measured yet (as slow as the slowest measured); a 3D job, with no 3D
    network measured, is started; the records of the jobs not started stay untouched."""
    import time as clock

    monkeypatch.chdir(tmp_path)
    started: list[str] = []
    monkeypatch.setattr(study, "spawn", completing_spawn(started))
    seed0 = _train_job("unet-dice-2d-seed0", 10)
    (seed0.run_dir / "report").mkdir(parents=True)
    (seed0.run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
    (tmp_path / "study_jobs.json").write_text(json.dumps({"runs/unet-dice-2d-seed0": {"task": "train", "status": "done",
                                                                                       "seconds": 6000.0}}))
    seed1 = _train_job("unet-dice-2d-seed1", 10)
    after = _train_job("unet-dice-2d-seed1-eval", 10, after=[seed1.run_dir])
    unmeasured = _train_job("drinet-dice-2d-seed0", 10)
    volumetric = _train_job("unet-dice-3d-seed0", 10)
    jobs = [seed0, seed1, after, unmeasured, volumetric]
    study.run_jobs(jobs, 1, False, tmp_path, tmp_path / "logs", deadline=clock.time() + 1800)
    assert [j.status for j in jobs] == ["skipped", "deferred", "deferred", "deferred", "done"]
    assert started == [volumetric.run_dir.name]
    times = json.loads((tmp_path / "study_jobs.json").read_text())
    assert set(times) == {"runs/unet-dice-2d-seed0", "runs/unet-dice-3d-seed0"}
    assert times["runs/unet-dice-3d-seed0"]["epochs"] == 10  # recorded for the next estimate
    # past the deadline nothing starts, measured or not
    late = [_train_job("segnet-dice-3d-seed1", 10)]
    study.run_jobs(late, 1, False, tmp_path, tmp_path / "logs", deadline=clock.time() - 1)
    assert late[0].status == "deferred" and len(started) == 1
    # without a deadline the deferred ones run, in order
    again = [_train_job("unet-dice-2d-seed1", 10), _train_job("unet-dice-2d-seed1-eval", 10, after=[seed1.run_dir])]
    study.run_jobs(again, 1, False, tmp_path, tmp_path / "logs")
    assert [j.status for j in again] == ["done", "done"] and started[1:] == [seed1.run_dir.name, after.run_dir.name]


def test_a_dry_run_gives_each_job_to_run_its_expected_time_and_the_total(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    done, seed1, unknown = (_train_job(n, e) for n, e in (("unet-dice-2d-seed0", 10), ("unet-dice-2d-seed1", 20),
                                                          ("segnet-dice-2d-seed0", 10)))
    linked = _train_job("unet-focal-2d-seed0", 10, linked=True)
    (done.run_dir / "report").mkdir(parents=True)
    (done.run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
    (tmp_path / "multirun" / "claims").mkdir(parents=True)
    (tmp_path / "multirun" / "claims" / "study_jobs.json").write_text(json.dumps(
        {"runs/unet-dice-2d-seed0": {"task": "train", "status": "done", "seconds": 600.0, "epochs": 10}}))
    monkeypatch.setattr(study, "plan", lambda claims, preset: [done, seed1, linked, unknown])
    monkeypatch.setattr(study, "finished_with_another_config", lambda jobs: [])
    assert main(["study", "run", "--dry-run", "--only", "C1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("(10 epochs)  [complete]") and lines[2].endswith("(20 epochs)  [expected 20 min]")
    assert lines[3].endswith("[linked from its grid run]")
    assert lines[4].endswith("[no measured time; 10 min at the slowest measured network's rate]")
    assert lines[5] == ("[study] to run: 2 jobs; 1 of them expected to take 0.3 h of job time (0.2 h with --jobs 2), "
                        "from the measured seconds per epoch of their networks' finished jobs; 1 without a measured "
                        "time (0.2 h at the slowest measured network's rate)")


def test_moving_an_arm_up_a_tier_keeps_its_curves_and_removes_only_its_runs(tmp_path):
    """scripts/move_arm_up_a_tier.py unet-x-2d: its seeds (an unfinished one too), its grid, their logs and its
    learning-rate choice go; the curves of the complete ones stay in --out; the tagged arm beside it is untouched."""
    import subprocess
    import sys

    claims, tuning = tmp_path / "claims", tmp_path / "claims_tuning"
    names = [claims / "unet-x-2d-seed0", claims / "unet-x-2d-seed1", claims / "unet-x-2d-seed0-fp0.7",
             tuning / "unet-x-2d-seed0-lr0.001", tuning / "unet-x-2d-seed0-fp0.7-lr0.001"]
    (claims / "logs").mkdir(parents=True)
    for run in names:
        write_tuning_run(run, {"epochs": 100, "mean_dice": 0.5, "convergence": {"verdict": "still improving"}})
        (claims / "logs" / f"{run.name}.log").write_text("log\n")
    (claims / "unet-x-2d-seed2").mkdir()  # stopped before its first report
    (claims / "lr_choice.json").write_text(json.dumps({"unet-x-2d-seed0": {"chosen": "0.001"},
                                                       "unet-x-2d-seed0-fp0.7": {"chosen": "0.009"}}))
    script = Path(__file__).resolve().parents[1] / "scripts" / "move_arm_up_a_tier.py"
    subprocess.run([sys.executable, str(script), "unet-x-2d", "--out", "curves.json", "--study-dir", str(claims)],
                   check=True, capture_output=True, text=True)
    left = sorted(p.name for p in [*claims.iterdir(), *tuning.iterdir()] if p.is_dir() and p.name != "logs")
    assert left == ["unet-x-2d-seed0-fp0.7", "unet-x-2d-seed0-fp0.7-lr0.001"]
    assert sorted(p.name for p in (claims / "logs").iterdir()) == ["unet-x-2d-seed0-fp0.7-lr0.001.log",
                                                                    "unet-x-2d-seed0-fp0.7.log"]
    assert list(json.loads((claims / "lr_choice.json").read_text())) == ["unet-x-2d-seed0-fp0.7"]
    curves = json.loads((claims / "curves.json").read_text())
    assert sorted(curves) == ["unet-x-2d-seed0", "unet-x-2d-seed0-lr0.001", "unet-x-2d-seed1"]
    assert curves["unet-x-2d-seed1"] == {"epochs": 100, "convergence": {"verdict": "still improving"},
                                         "test_mean_dice": 0.5}


def test_moving_a_loss_variant_checks_arm_up_a_tier_removes_its_grid_seeds_logs_and_choice_only(tmp_path):
    """--choice-key: a check folder (scripts/loss_variant_runs.sh) holds an arm's grid and seeds as
    PREFIX-seedN-lrRATE with their logs beside them; they and the arm's choice go, the curves stay in --out, the
    other loss's arm (whose name shares the prefix's start) is untouched."""
    import subprocess
    import sys

    check = tmp_path / "claims_dice_background"
    names = ["unet-dice-background-2d-seed0-lr0.001", "unet-dice-background-2d-seed0-lr0.003",
             "unet-dice-background-2d-seed1-lr0.001", "unet-dice-background-2d-seed1-lr0.001-x",
             "unet-dice_ce-background-2d-seed0-lr0.001"]
    for name in names:
        write_tuning_run(check / name, {"epochs": 100, "mean_dice": 0.6, "convergence": {"verdict": "still improving"}})
        (check / f"{name}.log").write_text("log\n")
    (check / "lr_choice.json").write_text(json.dumps({"dice_background": {"chosen": "0.001"},
                                                      "dice_ce_background": {"chosen": "0.003"}}))
    script = Path(__file__).resolve().parents[1] / "scripts" / "move_arm_up_a_tier.py"
    subprocess.run([sys.executable, str(script), "unet-dice-background-2d", "--study-dir", str(check),
                    "--choice-key", "dice_background", "--out", "runs_100.json"], check=True, capture_output=True)
    kept = names[3:]
    assert sorted(p.name for p in check.iterdir() if p.is_dir()) == sorted(kept)
    assert sorted(p.name for p in check.glob("*.log")) == sorted(f"{n}.log" for n in kept)
    assert list(json.loads((check / "lr_choice.json").read_text())) == ["dice_ce_background"]
    assert sorted(json.loads((check / "runs_100.json").read_text())) == sorted(names[:3])


def test_readme_table_shows_each_sides_level_beside_the_difference(tmp_path, monkeypatch):
    """The README's generated table: a row per claim with both sides' means, so a lesion difference between two
    means near 0 reads as a floor, and the verdict counts over all rows."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_study_table",
                                                  Path(__file__).parents[1] / "scripts" / "readme_study_table.py")
    table_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table_module)
    row = {"id": "C7a-focal-vs-dice-lesion", "claim": "Focal | Dice", "n_cases": "32", "candidate_runs": "3",
           "baseline_runs": "3", "candidate_mean": "0.00412", "baseline_mean": "0.000481", "mean_diff": "0.00364",
           "ci_low": "-0.0397", "ci_high": "0.0469", "verdict": "no practical difference", "note": ""}
    empty = {**row, "id": "C12-drinet", "candidate_runs": "0", "candidate_mean": "", "baseline_mean": "",
             "mean_diff": "", "verdict": "not evaluable", "note": "no run of the candidate"}
    readme = tmp_path / "README.md"
    readme.write_text("head\n<!-- study-table:begin -->\nold\n<!-- study-table:end -->\ntail\n")
    source = tmp_path / "claims.csv"
    with source.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerows([empty, row])
    monkeypatch.setattr("sys.argv", ["readme_study_table.py", str(source), str(readme)])
    table_module.main()
    text = readme.read_text()
    assert text.startswith("head\n<!-- study-table:begin -->\n") and text.endswith("<!-- study-table:end -->\ntail\n")
    assert "old" not in text
    assert "2 claim files, one family; verdicts: 0 reproduced, 0 contradicted, 1 no practical difference, " \
           "0 inconclusive, 1 not evaluable." in text
    lines = text.splitlines()
    assert "| candidate / baseline |" in lines[lines.index("<!-- study-table:begin -->") + 4]
    assert ("| C7a-focal-vs-dice-lesion | Focal / Dice | 32 x 3/3 | 0.00412 / 0.000481 | +0.00364 [-0.0397, +0.0469] "
            "| no practical difference |") in lines
    assert "| C12-drinet | Focal / Dice | 32 x 0/3 |  |  | not evaluable: no run of the candidate |" in lines
    # claims in their number's order: C7a before C12
    assert lines.index(next(x for x in lines if x.startswith("| C7a"))) < lines.index(
        next(x for x in lines if x.startswith("| C12")))
    # --check passes on the table it wrote, and fails, writing nothing, once a cell is edited
    monkeypatch.setattr("sys.argv", ["readme_study_table.py", str(source), str(readme), "--check"])
    table_module.main()
    readme.write_text(text.replace("+0.00364", "+0.00365"))
    with pytest.raises(SystemExit, match="not the one .* gives; rewrite it with"):
        table_module.main()
    assert "+0.00365" in readme.read_text()


@pytest.mark.slow
def test_only_one_claim_still_judges_a_job_against_every_claim_file():
    """``--only C22`` plans C22's jobs alone, but whether a job can change no verdict is judged against every
    claim file: one that an unselected claim still needs is not held (4 Dec: the hold looked at the selected
    claims only). ~10 s."""
    from ctbench.reports.claims import load_claims

    jobs = [j for j in study.plan(["C22"], "cpu") if j.composed is not None]
    every = {c.id for c in load_claims(study.CLAIMS_DIR)}
    assert jobs and all({c.id for c in j.held.args[1]} == every for j in jobs)
    assert any(not c.startswith("C22") for c in every)


@pytest.mark.slow
def test_c10s_source_run_is_needed_only_while_a_run_trained_from_it_is_not_complete(tmp_path, monkeypatch):
    """The source model's weights are not in git: on a fresh clone whose fine-tuned runs are all complete, the
    source is not trained again (4 Dec: the dry run listed it as 7 minutes still to run; retrained, it would not
    even be the model those runs started from). ~10 s."""
    monkeypatch.chdir(tmp_path)
    jobs = study.plan(["C10"], "cpu")
    source = next(j for j in jobs if "c10_source" in j.overrides[0])
    users = [j for j in jobs if source.run_dir in j.after]
    assert len(users) >= 3 and source.needed()
    for job in users:
        (job.run_dir / "report").mkdir(parents=True)
        (job.run_dir / "report" / "summary.json").write_text(json.dumps({"status": "complete"}))
    assert not source.needed() and "every run trained from it is complete" in study.what_is_left(
        source, jobs, {}, tmp_path)[0]
    (users[-1].run_dir / "report" / "summary.json").unlink()
    assert source.needed()


def test_the_sensitivity_table_splits_the_claim_files_as_labelled():
    """Fast: the exploratory claims are those whose ``claim:`` says so, the calibration claims those whose source is
    not the survey (Ma et al. 2021, nnU-Net Revisited); one family per statement groups C7a-j as C7."""
    claims = load_claims(CONFIG_DIR / "claims")
    kinds: dict[str, list[str]] = {}
    for claim in claims:
        kinds.setdefault(study.claim_kind(claim), []).append(claim.id.split("-")[0])
    assert sorted(kinds["exploratory"]) == ["C10b", "C2b", "C4c", "C5a", "C5b"]
    assert sorted(kinds["calibration"]) == ["C21a", "C21b", "C21c", "C21d", "C21e", "C21f", "C21g", "C21h", "C25"]
    assert len(kinds["survey"]) == len(claims) - 14
    per_statement = study.OTHER_FAMILIES[1][1]
    assert {per_statement(c) for c in claims if c.id.startswith("C7")} == {"C7"}


BATCH, BACKGROUND = study.LOSS_VARIANTS


def test_the_dice_formulation_sensitivity_puts_each_batch_arm_at_its_chosen_rate_in_its_sides_place(tmp_path):
    """Every claim with a region-loss side, candidate or baseline or both, is judged with the check's runs of that
    loss at its recorded rate in each such side's place (the other rate's runs left out); the differences are the
    ones by hand; a claim with a side whose batch arm has no recorded choice reads "not trained (that loss)"; a
    claim without a region-loss side is not listed."""
    for seed in range(3):
        write_run(tmp_path / "study" / f"combo{seed}", "combo", seed, COMBO[seed], [0] * 6)
        write_run(tmp_path / "study" / f"dice{seed}", "dice", seed, DICE[seed], [0] * 6)
        write_run(tmp_path / "study" / f"gdl{seed}", "generalized_dice", seed, [0.6] * 6, [0] * 6)
        for loss, rate, values in (("dice", "0.003", COMBO[seed][:5] + [0.5]), ("dice", "0.009", [0.0] * 6),
                                   ("generalized_dice", "0.001", [1.0] * 6)):
            folder = tmp_path / "check" / f"{loss}-batch{seed}-lr{rate}"
            write_run(folder, loss, seed, values, [0] * 6)
            with (folder / ".hydra" / "overrides.yaml").open("a") as overrides:
                overrides.write(f"- loss.batch=true\n- optim.optimizer.lr={rate}\n")
    claims = [parse_claim(tmp_path / "a.yaml", claim_data(expect="higher")),
              parse_claim(tmp_path / "b.yaml", claim_data(id="C8b", candidate={"loss": "dice"},
                                                          baseline={"loss": "combo"})),
              parse_claim(tmp_path / "c.yaml", claim_data(id="C8c", baseline={"loss": "combo", "study.tag": "-x"})),
              parse_claim(tmp_path / "d.yaml", claim_data(id="C8d", candidate={"loss": "generalized_dice"},
                                                          expect="higher"))]
    runs, _ = collect([tmp_path / "study"])
    checks, _ = collect([tmp_path / "check"])
    declared = evaluate_claims(claims, runs)
    shown = ["C8", "C8b", "C8c", "C8d"]
    choice = {BATCH.key("dice"): {"validation": {"0.001": 0.5, "0.003": 0.6, "0.009": 0.4},
                                               "chosen": "0.003"}}
    (tmp_path / "check" / "lr_choice.json").write_text(json.dumps(choice))
    rows = [line for line in study.variant_sensitivity(claims, runs, declared, shown, checks, tmp_path / "check", BATCH)
            if line.startswith("| C8")]
    # combo minus the batch Dice (combo's own values on cases 0-4, 0.5 on case_05): (1.0 - 0.5) / 6 every seed
    assert rows[0].startswith("| C8 | baseline dice |") and "| +0.0833 [" in rows[0] and rows[0].endswith("| 3/3 |")
    assert rows[1].startswith("| C8b | candidate dice |") and "| -0.0833 [" in rows[1]
    assert rows[2] == (f"| C8d | candidate generalized_dice, baseline dice | {study._sensitivity_cell(declared[3])} "
                       "| not trained (generalized_dice) |  |")
    assert len(rows) == 3
    choice[BATCH.key("generalized_dice")] = {"validation": {"0.001": 0.7}, "chosen": "0.001"}
    (tmp_path / "check" / "lr_choice.json").write_text(json.dumps(choice))
    lines = study.variant_sensitivity(claims, runs, declared, shown, checks, tmp_path / "check", BATCH)
    # both sides replaced: 1.0 minus the batch Dice, (3.0 + 0.5) / 6, (2.98 + 0.5) / 6 twice: mean 0.5811
    row = next(line for line in lines if line.startswith("| C8d"))
    assert "| +0.581 [" in row and row.endswith("| 3/3 |")
    assert "generalized_dice: 0.001 0.700, 0.001 chosen, 100 epochs" in "".join(lines)
    # an arm with a seed still to train is not judged on the seeds it has
    partial = [r for r in checks if r.name != "generalized_dice-batch2-lr0.001"]
    lines = study.variant_sensitivity(claims, runs, declared, ["C8d"], partial, tmp_path / "check", BATCH)
    assert lines[-1].endswith("| not trained (generalized_dice: seed 2 missing) |  |")
    dice = [r for r in checks if r.name.startswith("dice-") and r.name.endswith("lr0.003")]
    replaced = study.replaced_arm_runs(claims, runs, BATCH, {"dice": dice})
    assert {r.name for r in replaced["C8"]} == {"combo0", "combo1", "combo2", "gdl0", "gdl1", "gdl2",
                                                *(r.name for r in dice)} and len(dice) == 3
    assert "C8" not in study.replaced_arm_runs(claims, runs, BATCH, {"dice": dice[:2]})  # seed 2 missing
    assert "C8d" not in replaced and "C8c" not in replaced
    both = study.replaced_arm_runs(claims, runs, BATCH, {"dice": checks, "generalized_dice": checks})["C8d"]
    assert all(r.path.parent == tmp_path / "check" for r in both if r.attribute("loss") != "combo")
    (tmp_path / "check" / "lr_choice.json").unlink()
    lines = study.variant_sensitivity(claims, runs, declared, ["C8"], checks, tmp_path / "check", BATCH)
    assert [line for line in lines if line.startswith("| C8")][0].endswith("| not trained (dice) |  |")
    assert study.variant_sensitivity(claims, runs, declared, ["C8c"], checks, tmp_path / "check", BATCH) == []
    # generalized Dice keeps the background in its loss: only C8d's Dice side is the background check's
    lines = study.variant_sensitivity(claims, runs, declared, ["C8d"], [], tmp_path / "check", BACKGROUND)
    assert lines[-1].startswith("| C8d | baseline dice |") and lines[-1].endswith("| not trained (dice) |  |")
    assert BACKGROUND.dir(tmp_path / "claims") == tmp_path / "claims_dice_background"


def test_a_tagged_arm_of_a_loss_variant_check_is_judged_at_its_own_recorded_rate(tmp_path):
    """C17's Tversky weighting false positives is the loss tversky with study.tag -fp0.7 and study.arm tversky_fp:
    in a loss-variant check its rate is recorded under its arm's key, apart from plain tversky's; a claim on the
    tagged side is judged with the tagged arm's runs at that rate, one on the untagged side with the untagged arm's
    at its own, and the grid line names each arm."""
    for seed in range(3):
        write_run(tmp_path / "study" / f"combo{seed}", "combo", seed, COMBO[seed], [0] * 6)
        write_run(tmp_path / "study" / f"dice{seed}", "dice", seed, DICE[seed], [0] * 6)
        write_run(tmp_path / "study" / f"dice{seed}-fp", "dice", seed, DICE[seed], [0] * 6, tag="-fp", arm="dice_fp")
        for tag, arm, rate, value in (("", None, "0.003", 0.5), ("", None, "0.009", 0.0),
                                      ("-fp", "dice_fp", "0.009", 0.7), ("-fp", "dice_fp", "0.003", 0.1)):
            folder = tmp_path / "check" / f"dice-batch{seed}{tag}-lr{rate}"
            write_run(folder, "dice", seed, [value] * 6, [0] * 6, tag=tag, arm=arm)
            with (folder / ".hydra" / "overrides.yaml").open("a") as overrides:
                overrides.write(f"- loss.batch=true\n- optim.optimizer.lr={rate}\n")
    plain = parse_claim(tmp_path / "a.yaml", claim_data(where={}, candidate={"loss": "combo", "study.tag": ""},
                                                        baseline={"loss": "dice", "study.tag": ""}))
    tagged = parse_claim(tmp_path / "b.yaml", claim_data(id="C8b", where={}, candidate={"loss": "combo", "study.tag": ""},
                                                         baseline={"loss": "dice", "study.tag": "-fp"}))
    runs, _ = collect([tmp_path / "study"])
    checks, _ = collect([tmp_path / "check"])
    assert {study.study_arm(r) for r in checks} == {"dice", "dice_fp"}
    choice = {BATCH.key("dice"): {"validation": {"0.003": 0.6, "0.009": 0.4}, "chosen": "0.003"},
              BATCH.key("dice_fp"): {"validation": {"0.003": 0.3, "0.009": 0.5}, "chosen": "0.009"}}
    (tmp_path / "check" / "lr_choice.json").write_text(json.dumps(choice))
    declared = evaluate_claims([plain, tagged], runs)
    lines = study.variant_sensitivity([plain, tagged], runs, declared, ["C8", "C8b"], checks, tmp_path / "check",
                                      BATCH)
    rows = [line for line in lines if line.startswith("| C8")]
    # combo's mean lesion Dice (0.5022) minus 0.5 (plain Dice's runs at 0.003) or 0.7 (the tagged arm's at 0.009)
    combo = sum(sum(values) / 6 for values in COMBO) / 3
    replaced = [float(row.split(" | ")[3].split(" [")[0]) for row in rows]
    assert replaced == [pytest.approx(combo - 0.5, abs=5e-4), pytest.approx(combo - 0.7, abs=5e-4)]
    assert rows[0].endswith("| 3/3 |") and rows[1].endswith("| 3/3 |")
    assert "dice: 0.003 0.600, 0.009 0.400, 0.003 chosen" in lines[1]
    assert "dice_fp: 0.003 0.300, 0.009 0.500, 0.009 chosen" in lines[1]
    # the tagged arm without its own choice: its claim is not judged on plain Dice's rate
    del choice[BATCH.key("dice_fp")]
    (tmp_path / "check" / "lr_choice.json").write_text(json.dumps(choice))
    rows = [line for line in study.variant_sensitivity([plain, tagged], runs, declared, ["C8", "C8b"], checks,
                                                       tmp_path / "check", BATCH) if line.startswith("| C8")]
    assert rows[1].endswith("| not trained (dice-fp) |  |") and rows[0].endswith("| 3/3 |")


def test_the_epoch_sensitivity_judges_a_claim_again_with_its_shorter_arm_trained_as_long(tmp_path, monkeypatch):
    """A candidate at 150 epochs against a baseline at 100: the baseline's runs at 150 (the epoch check's) replace
    its runs at 100 for that claim alone, whichever side is shorter; the family stays the claims given; the
    differences are the ones by hand; a shorter arm without runs at the longer's epochs reads "not trained"."""
    for seed in range(3):
        write_run(tmp_path / "study" / f"combo{seed}", "combo", seed, COMBO[seed], [0] * 6, epochs=150)
        write_run(tmp_path / "study" / f"dice{seed}", "dice", seed, DICE[seed], [0] * 6)
        write_run(tmp_path / "study" / f"dice{seed}-x", "dice", seed, DICE[seed], [0] * 6, tag="-x")
        write_run(tmp_path / "check" / f"dice{seed}-e150", "dice", seed, COMBO[seed][:5] + [0.5], [0] * 6,
                  epochs=150)
    write_run(tmp_path / "check" / "dice0-e500", "dice", 0, [0.0] * 6, [0] * 6, epochs=500)  # another tier
    claims = [parse_claim(tmp_path / "a.yaml", claim_data(expect="higher")),
              parse_claim(tmp_path / "b.yaml", claim_data(id="C8b", candidate={"loss": "dice"},
                                                          baseline={"loss": "combo"})),
              parse_claim(tmp_path / "c.yaml", claim_data(id="C8c", baseline={"loss": "dice", "study.tag": "-x"}))]
    runs, _ = collect([tmp_path / "study"])
    checks, _ = collect([tmp_path / "check"])
    unequal = study.equal_epoch_runs(claims, runs, checks)
    assert {k: v[:2] for k, v in unequal.items()} == {"C8": ("150", "100"), "C8b": ("100", "150"),
                                                      "C8c": ("150", "100")}
    swapped = {r.name for r in runs} - {"dice0", "dice1", "dice2"} | {"dice0-e150", "dice1-e150", "dice2-e150"}
    assert {r.name for r in unequal["C8"][2]} == {r.name for r in unequal["C8b"][2]} == swapped
    assert unequal["C8c"][2] is None and study.equal_epoch_runs(claims, runs, [])["C8"][2] is None
    declared = evaluate_claims(claims, runs)
    redone = {v.claim.id: v for v in evaluate_claims(claims, runs, runs_of={"C8": unequal["C8"][2]})}
    # combo minus its own values on cases 0-4, minus 0.5 on case_05: (1.0 - 0.5) / 6 for every seed
    assert redone["C8"].test.estimate == pytest.approx(0.5 / 6)
    assert redone["C8c"].test.estimate == pytest.approx(declared[2].test.estimate)
    assert redone["C8"].family_size == 3
    lines = study.epoch_sensitivity(claims, runs, declared, ["C8", "C8b", "C8c"], checks, tmp_path / "check")
    rows = [line for line in lines if line.startswith("| C8")]
    assert rows[0].startswith("| C8 | 150 / 100 |") and "| +0.0833 [" in rows[0] and rows[0].endswith("| 3/3 |")
    assert rows[1].startswith("| C8b | 100 / 150 |") and "| -0.0833 [" in rows[1]
    assert rows[2].startswith("| C8c | 150 / 100 |") and rows[2].endswith("| not trained |  |")
    assert study.epoch_sensitivity(claims, runs, declared, ["C7"], checks, tmp_path / "check") == []
    monkeypatch.setitem(study.EPOCHS_BY_DESIGN, "C8b", "unequal by design")
    lines = study.epoch_sensitivity(claims, runs, declared, ["C8b"], checks, tmp_path / "check")
    assert [line for line in lines if line.startswith("| C8b")][0].endswith("| unequal by design |  |")


def test_lost_classes_counts_the_runs_below_the_floor_per_loss_and_seed(tmp_path):
    """scripts/lost_classes.py: a run loses a class when its test mean Dice is below --below (0.1, strictly); the
    lesion is left out unless --with-lesion; a run on another dataset or split is not counted; no run at all is one
    line and a non-zero exit."""
    import json
    import subprocess
    import sys

    def run(name, loss, seed, dice, dataset="phantom_study", split="test", verdict="converged"):
        (tmp_path / name / "report").mkdir(parents=True)
        (tmp_path / name / "report" / "summary.json").write_text(json.dumps({
            "loss": loss, "seed": seed, "dataset": dataset, "split": split, "convergence": {"verdict": verdict},
            "per_class": {name: {"dice": value} for name, value in dice.items()}}))

    run("unet-dice-2d-seed2", "dice", 2, {"liver": 0.9, "spleen": 0.016, "lesion": 0.0})
    run("unet-dice-2d-seed1", "dice", 1, {"liver": 0.9, "spleen": 0.1, "lesion": 0.0})  # 0.1 is not below 0.1
    run("unet-ce-2d-seed2", "ce", 2, {"liver": 0.9, "spleen": 0.8, "lesion": 0.05})
    run("unet-ce-2d-seed3-e15", "ce", 3, {"liver": 0.05, "spleen": 0.8}, verdict="still improving")
    run("unet-ce-2d-seed0-val", "ce", 0, {"liver": 0.0}, split="val")
    run("unet-ce-2d-seed0-other", "ce", 0, {"liver": 0.0}, dataset="phantom")
    script = Path(__file__).resolve().parents[1] / "scripts" / "lost_classes.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert "| ce |  | 0/1 | 1/1 | 1/2 |" in out and "| dice | 0/1 | 1/1 |  | 1/2 |" in out
    assert out[-2:] == [f"- {tmp_path / 'unet-ce-2d-seed3-e15'}: liver 0.050 (still improving)",
                        f"- {tmp_path / 'unet-dice-2d-seed2'}: spleen 0.016"]
    with_lesion = subprocess.run([sys.executable, str(script), str(tmp_path), "--with-lesion"], capture_output=True,
                                 text=True, check=True).stdout.splitlines()
    assert "| ce |  | 1/1 | 1/1 | 2/2 |" in with_lesion and "| dice | 1/1 | 1/1 |  | 2/2 |" in with_lesion
    failed = subprocess.run([sys.executable, str(script), str(tmp_path / "missing")], capture_output=True, text=True)
    assert failed.returncode != 0 and "no complete run on dataset=phantom_study" in failed.stderr


def test_gate_redraw_pairs_runs_by_name_and_counts_the_verdicts_that_flip(tmp_path):
    """scripts/gate_redraw.py: a run trained again is paired with the study run of its name; the gain is best_last -
    best_before; the median and largest absolute change of the gain and the flipped verdicts are summed up; a run
    without a partner or a convergence record is left out, and no pair at all is one line and a non-zero exit."""
    import json
    import subprocess
    import sys

    def run(folder, name, best_last, best_before, verdict):
        (tmp_path / folder / name / "report").mkdir(parents=True)
        (tmp_path / folder / name / "report" / "summary.json").write_text(json.dumps({
            "mean_dice": 0.6, "convergence": {"best_last": best_last, "best_before": best_before,
                                              "verdict": verdict}}))

    run("study", "a-seed0", 0.603, 0.600, "converged")
    run("again", "a-seed0", 0.610, 0.600, "still improving")  # gain +0.003 -> +0.010: moves 0.007, flips
    run("study", "a-seed1", 0.600, 0.600, "converged")
    run("again", "a-seed1", 0.599, 0.600, "converged")  # 0 -> -0.001: moves 0.001
    run("study", "a-seed2", 0.600, 0.600, "converged")
    run("again", "a-seed2", 0.600, 0.500, "still improving")  # gain +0.1 -> moves 0.1
    run("again", "b-seed0", 0.6, 0.6, "converged")  # no partner in the study
    run("study", "c-seed0", 0.600, 0.610, "converged")  # fell by 0.010: more than 0.007 below the plateau
    run("study", "c-seed1", 0.610, 0.600, "still improving")
    script = Path(__file__).resolve().parents[1] / "scripts" / "gate_redraw.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "study"), str(tmp_path / "again")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert "| a-seed0 | +0.0030 | converged | +0.0100 | still improving | 0.600 / 0.600 |" in out
    assert out[-2] == ("3 pairs: the gain moves by 0.0070 (median) and 0.1000 (largest) on a redraw; the verdict "
                       "flips on 2 (a-seed0, a-seed2)")
    # the study's converged runs with a gain in (0.005 - 0.007, 0.005]: +0.003, 0 and 0, not -0.010 (the plateau is
    # 0.005 when the record has none); the run still improving does not count
    assert out[-1] == f"{tmp_path / 'study'}: 3 of its 5 runs with a gate record converged by less than that median " \
        "(a gain within it of the plateau)"
    for folders, message in (((tmp_path / "study", tmp_path / "missing"), "is not a folder"),
                             ((tmp_path / "again", tmp_path / "study" / "a-seed0"), "has a complete run of the same name")):
        failed = subprocess.run([sys.executable, str(script), *map(str, folders)], capture_output=True, text=True)
        assert failed.returncode != 0 and message in failed.stderr


def test_gate_redraw_lists_the_verdicts_whose_sides_hold_a_run_within_the_redraw_median_of_the_gate(tmp_path):
    """scripts/gate_redraw.py --verdicts: the claims are judged on the study's runs, and a verdict is listed with the
    converged runs of its sides whose gain is within the redraw median below the plateau (here 0.003: a gain in
    (0.002, 0.005]); a run further below it is not."""
    import subprocess
    import sys

    for seed in range(3):
        write_run(tmp_path / "study" / f"combo{seed}", "combo", seed, COMBO[seed], [2, 3, 1, 4, 0, 0])
        write_run(tmp_path / "study" / f"dice{seed}", "dice", seed, DICE[seed], [1, 3, 0, 4, 0, 0])
    gains = {"study/dice1": 0.004, "study/combo2": 0.0015}  # within the median; below it (gain 0 elsewhere)
    write_run(tmp_path / "again" / "dice0", "dice", 0, DICE[0], [1, 3, 0, 4, 0, 0])
    gains["again/dice0"] = 0.003  # a redraw of dice0: its gain moves 0 -> 0.003, the median of one pair
    for run in (tmp_path / "study").iterdir():
        gains.setdefault(f"study/{run.name}", 0.0)
    for name, gain in gains.items():
        path = tmp_path / name / "report" / "summary.json"
        summary = json.loads(path.read_text())
        summary["mean_dice"] = 0.5
        summary["convergence"]["best_last"] = 0.5 + gain
        path.write_text(json.dumps(summary))
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "c8.yaml").write_text(json.dumps(claim_data(statistic="seed_sd")))
    script = Path(__file__).resolve().parents[1] / "scripts" / "gate_redraw.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "study"), str(tmp_path / "again"), "--verdicts",
                          "--claims-dir", str(tmp_path / "claims")], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert "| C8 | reproduced | dice1 (+0.0040) |" in lines
    assert lines[-1] == ("1 of the 1 verdicts other than not evaluable rest on such a run, 1 of the 1 reproduced or "
                         "contradicted")


def test_gate_redraw_judges_an_evaluation_run_by_the_gate_of_the_training_run_whose_checkpoint_it_tested(tmp_path):
    """scripts/gate_redraw.py's trained_gate: a run with its own gate record is judged by it; an evaluation run
    (the CRF's, no record) by the training run its checkpoint names, else, when that path is not here (written on
    another machine), by the run of that name beside it; a checkpoint that is not a .ckpt path, or a training run
    without a record, gives none."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gate_redraw", Path(__file__).resolve().parents[1] / "scripts" / "gate_redraw.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(name, convergence=None, mean_dice=0.6):
        (tmp_path / name / "report").mkdir(parents=True)
        summary = {"mean_dice": mean_dice, **({"convergence": convergence} if convergence else {})}
        (tmp_path / name / "report" / "summary.json").write_text(json.dumps(summary))
        return tmp_path / name

    trained = run("deeplabv1-dice_ce-2d-seed0", {"best_last": 0.703, "best_before": 0.700, "verdict": "converged",
                                                 "plateau": 0.005}, mean_dice=0.71)
    evaluation = run("deeplabv1-dice_ce-2d-seed0-eval-crf", mean_dice=0.72)
    untrained = run("deeplabv1-dice_ce-2d-seed1")  # a summary without a gate record
    own = module.trained_gate(trained, None)
    assert own[1:] == ("converged", 0.71, 0.005) and own[0] == pytest.approx(0.003)
    assert module.trained_gate(evaluation, str(trained / "checkpoints" / "best.ckpt")) == own
    elsewhere = "/another/machine/multirun/claims/deeplabv1-dice_ce-2d-seed0/checkpoints/best.ckpt"
    assert module.trained_gate(evaluation, elsewhere) == own
    assert module.trained_gate(evaluation, None) is None
    assert module.trained_gate(evaluation, str(trained / "report" / "summary.json")) is None
    assert module.trained_gate(evaluation, str(untrained / "checkpoints" / "best.ckpt")) is None
    assert module.trained_gate(evaluation, "/elsewhere/deeplabv1-dice_ce-2d-seed9/checkpoints/last.ckpt") is None


def test_seconds_per_epoch_by_cpu_leaves_out_a_run_resumed_before_train_seconds_summed_its_processes(tmp_path):
    """scripts/study_time_spent.py --by-cpu: the median train_seconds / epochs per network and CPU; a run whose
    train.log shows a resume from last.ckpt and whose summary's commit is not known to have 63b4823 counted only its
    last process, so it is left out and named; an evaluation run (``-eval-``) trains nothing and is skipped."""
    import json
    import subprocess
    import sys

    def run(name, seconds, commit="", resumed=False):
        (tmp_path / name / "report").mkdir(parents=True)
        (tmp_path / name / "report" / "summary.json").write_text(json.dumps({
            "epochs": 100, "train_seconds": seconds, "git_commit": commit,
            "predict_hardware": "CPU AMD EPYC, 1 torch thread(s)"}))
        (tmp_path / name / "train.log").write_text(
            "[INFO] - Restoring states from the checkpoint path at /x/checkpoints/last.ckpt\n" if resumed else "")

    run("unet-dice-2d-seed0", 300.0)
    run("unet-dice-2d-seed1", 500.0)
    run("unet-dice-2d-seed2", 400.0, resumed=False)
    run("unet-dice_ce-3d-seed0", 8.8, commit="0" * 40, resumed=True)  # a commit git does not know: before
    run("unet-dice_ce-2d-seed0-eval-crf", 1.0)
    script = Path(__file__).resolve().parents[1] / "scripts" / "study_time_spent.py"
    out = subprocess.run([sys.executable, str(script), "--by-cpu", str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert "| unet-2d | AMD EPYC | 3 | 4.00 |" in out and not any(line.startswith("| unet-3d") for line in out)
    assert out[-1].startswith("Left out: 1 runs resumed before 63b4823") and out[-1].endswith("unet-dice_ce-3d-seed0")


def test_test_time_choice_sets_each_evaluation_beside_the_training_run_whose_checkpoint_it_tested(tmp_path):
    """scripts/test_time_choice.py: per training run, the organ Dice and HD95 (the mean of ``per_class`` over the
    organs), the organ cells of per_case.csv with an HD95 above --far (the lesion and an undefined HD95 not counted)
    and the checkpoint's epoch, for best.ckpt (the training run's report) and for each choice's evaluation of it; a
    choice not run yet for a run is an empty cell, a sub-folder of training runs is no choice, and a folder without
    evaluations is one line and a non-zero exit."""
    import subprocess
    import sys

    def run(folder, name, epoch, dice, hd95, rows, checkpoint=None):
        report = tmp_path / folder / name / "report"
        report.mkdir(parents=True)
        summary = {"epochs": 250, "checkpoint_epoch": epoch, "train_seconds": None if checkpoint else 60.0,
                   "per_class": {c: {"dice": d, "hd95": h} for c, d, h in zip(("liver", "spleen", "kidney"), dice,
                                                                              hd95, strict=True)}}
        if checkpoint:
            summary["checkpoint"] = str(tmp_path / checkpoint / "checkpoints" / "last.ckpt")
        (report / "summary.json").write_text(json.dumps(summary))
        (report / "per_case.csv").write_text("case,class,dice,hd95\n" + "".join(f"{r}\n" for r in rows))
        return tmp_path / folder / name

    rows = ["p0,liver,0.9,60.5", "p0,spleen,0.8,", "p0,lesion,0.0,90", "p1,kidney,0.7,50.0", "p1,liver,0.9,51"]
    run("train", "fcn8s-seed2", 49, (0.9, 0.8, 0.7), (10.0, 20.0, 90.0), rows)  # 0.800, 40.0 mm, 2 far cells
    run("tests/final", "fcn8s-seed2", 249, (0.9, 0.9, 0.9), (3.0, 6.0, 9.0), ["p0,liver,0.9,3"], "train/fcn8s-seed2")
    run("train", "fcn8s-seed0", 99, (0.6, 0.6, 0.6), (30.0, 30.0, 30.0), ["p0,liver,0.6,80"])
    run("tests/lcc", "fcn8s-seed0", 99, (0.7, 0.7, 0.7), (20.0, 20.0, 20.0), ["p0,liver,0.7,55"], "train/fcn8s-seed0")
    run("tests/replayed", "fcn8s-seed3", 59, (0.8, 0.8, 0.8), (9.0, 9.0, 9.0), [])  # training runs: not a choice
    script = Path(__file__).resolve().parents[1] / "scripts" / "test_time_choice.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "tests")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[1] == "| training run | epochs | best.ckpt | final | lcc |"
    assert "| train/fcn8s-seed2 | 250 | 0.800, 40.0, 2 (epoch 49) | 0.900, 6.0, 0 (epoch 249) |  |" in out
    assert "| train/fcn8s-seed0 | 250 | 0.600, 30.0, 1 (epoch 99) |  | 0.700, 20.0, 1 (epoch 99) |" in out
    (tmp_path / "empty" / "final").mkdir(parents=True)
    failed = subprocess.run([sys.executable, str(script), str(tmp_path / "empty")], capture_output=True, text=True)
    assert failed.returncode != 0 and "no sub-folder with complete evaluation runs" in failed.stderr
    run("train", "fcn8s-seed1", 125, (0.9, 0.9, 0.9), (5.0, 5.0, 5.0), [])  # epoch 126 of 250: the second half
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "train"), "--tested-epochs"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[2:] == ["| fcn8s-seed2 | 49 | 250 |", "| fcn8s-seed0 | 99 | 250 |", "| fcn8s-seed1 | 125 | 250 |",
                       "2 of 3 training runs tested a checkpoint from the first half of their schedule"]


def test_retrained_sensitivity_judges_the_runs_in_place_alone_and_the_added_ones_pooled(tmp_path):
    """scripts/retrained_sensitivity.py on a folder that both replaces a study run (combo0) and adds seeds (combo3,
    dice3): the in-place column is the study with combo0 replaced and nothing added; the replication column the
    added seeds alone; the pooled column all four a side; two folders holding one run name are refused."""
    import shutil
    import subprocess
    import sys

    for seed in range(3):
        write_run(tmp_path / "study" / f"combo{seed}", "combo", seed, COMBO[seed], [2, 3, 1, 4, 0, 0])
        write_run(tmp_path / "study" / f"dice{seed}", "dice", seed, DICE[seed], [1, 3, 0, 4, 0, 0])
    write_run(tmp_path / "again" / "combo0", "combo", 0, [0.9] * 6, [4] * 6)
    write_run(tmp_path / "again" / "combo3", "combo", 3, [0.1] * 6, [4] * 6)
    write_run(tmp_path / "again" / "dice3", "dice", 3, [0.3] * 6, [4] * 6)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "c8.yaml").write_text(json.dumps(claim_data()))
    script = Path(__file__).resolve().parents[1] / "scripts" / "retrained_sensitivity.py"
    command = [sys.executable, str(script), "--study", str(tmp_path / "study"), "--claims-dir", str(tmp_path / "claims")]
    out = subprocess.run([*command, str(tmp_path / "again")], capture_output=True, text=True, check=True,
                         cwd=script.parents[1], env={**os.environ, "PYTHONPATH": str(script.parents[1] / "src")})
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| C8 |")]

    def mean(runs: list[list[float]]) -> float:  # a side's mean, by hand: over its runs of their case means
        return sum(sum(r) / len(r) for r in runs) / len(runs)

    in_place, (alone, pooled) = rows[0][3], rows[1][3:5]
    assert in_place.startswith(f"{mean([[0.9] * 6, COMBO[1], COMBO[2]]):.3f} / {mean(DICE):.3f} ")
    assert alone.startswith("0.100 / 0.300 ")
    assert pooled.startswith(f"{mean([[0.9] * 6, COMBO[1], COMBO[2], [0.1] * 6]):.3f} / "
                             f"{mean([*DICE, [0.3] * 6]):.3f} ")
    shutil.copytree(tmp_path / "again" / "combo3", tmp_path / "twice" / "combo3")
    failed = subprocess.run([*command, str(tmp_path / "again"), str(tmp_path / "twice")], capture_output=True,
                            text=True, cwd=script.parents[1], env={**os.environ, "PYTHONPATH": str(script.parents[1] / "src")})
    assert failed.returncode != 0 and "combo3: in more than one of the folders" in failed.stderr


def test_retrained_sensitivity_reads_a_final_checkpoint_evaluation_as_trained_only_when_asked(tmp_path):
    """scripts/retrained_sensitivity.py --as-trained: evaluation runs of a checkpoint on the test split without
    post-processing match a claim that asks ``task_name: train`` (as C14's selectors do); without the option they
    match no side and are refused; an evaluation with post-processing is never read as trained."""
    import subprocess
    import sys

    def mark(folder: Path, task: str, postprocess: str = "null") -> None:
        config = folder / "resolved_config.yaml"
        config.write_text(config.read_text().replace("postprocess: null\n", f"postprocess: {postprocess}\n")
                          + f"task_name: {task}\nsplit: test\n")
        if task == "eval":
            (folder / ".hydra" / "overrides.yaml").write_text(
                (folder / ".hydra" / "overrides.yaml").read_text() + f"- postprocess={postprocess}\n")
            summary = json.loads((folder / "report" / "summary.json").read_text())
            summary["checkpoint"] = f"trained/{folder.name}/checkpoints/last.ckpt"
            (folder / "report" / "summary.json").write_text(json.dumps(summary))

    for seed in range(3):
        for loss, values in (("combo", COMBO), ("dice", DICE)):
            write_run(tmp_path / "study" / f"{loss}{seed}", loss, seed, values[seed], [2, 3, 1, 4, 0, 0])
            mark(tmp_path / "study" / f"{loss}{seed}", "train")
    for loss, value in (("combo", 0.1), ("dice", 0.3)):
        write_run(tmp_path / "final" / f"{loss}3", loss, 3, [value] * 6, [4] * 6)
        mark(tmp_path / "final" / f"{loss}3", "eval")
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "c8.yaml").write_text(json.dumps(claim_data(where={"study.tag": "", "task_name": "train"})))
    script = Path(__file__).resolve().parents[1] / "scripts" / "retrained_sensitivity.py"
    command = [sys.executable, str(script), "--study", str(tmp_path / "study"), "--claims-dir",
               str(tmp_path / "claims"), str(tmp_path / "final")]
    env = {**os.environ, "PYTHONPATH": str(script.parents[1] / "src")}
    refused = subprocess.run(command, capture_output=True, text=True, cwd=script.parents[1], env=env)
    assert refused.returncode != 0 and "combo3, dice3 name no run" in refused.stderr
    out = subprocess.run([*command, "--as-trained"], capture_output=True, text=True, check=True,
                         cwd=script.parents[1], env=env)
    row, = (line.split(" | ") for line in out.stdout.splitlines() if line.startswith("| C8 |"))
    assert row[1] == "1, 1" and row[3].startswith("0.100 / 0.300 ")
    mark_crf = tmp_path / "final" / "combo3" / "resolved_config.yaml"  # post-processed: not a training run's test
    mark_crf.write_text(mark_crf.read_text().replace("postprocess: null", "postprocess: crf"))
    (tmp_path / "final" / "combo3" / ".hydra" / "overrides.yaml").write_text("- loss=combo\n- seed=3\n- postprocess=crf\n")
    crf = subprocess.run([*command, "--as-trained"], capture_output=True, text=True, cwd=script.parents[1], env=env)
    assert crf.returncode != 0 and "combo3 name no run" in crf.stderr


def test_verdict_robustness_sets_each_reading_beside_the_declared_verdict(tmp_path):
    """scripts/verdict_robustness.py: the declared verdict (combo 0.3 above dice: contradicted, C8 expects lower),
    the fresh seeds judged alone (combo 0.3 below: reproduced), a reading whose declaration does not read the claim
    left empty (today's code reads C1, C2b, ... not C8), the count of readings that agree, --write into a
    file's markers (refused without them), and --check, which passes on the written table and fails on an edited one."""
    import subprocess
    import sys

    base = [0.40, 0.50, 0.30, 0.60, 0.20, 0.45]
    for seed in range(6):
        shift = 0.3 if seed < 3 else -0.3  # seeds 0-2: the study; 3-5: the fresh seeds
        folder = tmp_path / ("claims" if seed < 3 else "claims_fresh_seeds")
        write_run(folder / f"combo{seed}", "combo", seed, [v + shift + 0.01 * seed * (i % 2) for i, v in enumerate(base)],
                  [4] * 6)
        write_run(folder / f"dice{seed}", "dice", seed, [v + 0.02 * seed * (i % 3 == 0) for i, v in enumerate(base)],
                  [4] * 6)
    write_run(tmp_path / "claims_same_code" / "combo0", "combo", 0, [0.9] * 6, [4] * 6)
    (tmp_path / "claim_files").mkdir()
    (tmp_path / "claim_files" / "c8.yaml").write_text(json.dumps(claim_data()))
    script = Path(__file__).resolve().parents[1] / "scripts" / "verdict_robustness.py"
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- robustness:begin -->\nold\n<!-- robustness:end -->\nafter\n")
    command = [sys.executable, str(script), "--study", str(tmp_path / "claims"), "--claims-dir",
               str(tmp_path / "claim_files"), "--write", str(doc), "--check", str(doc)]  # the written table passes
    env = {**os.environ, "PYTHONPATH": str(script.parents[1] / "src")}
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=script.parents[1], env=env)
    head, = (line.strip("| ").split(" | ") for line in out.stdout.splitlines() if line.startswith("| claim |"))
    row, = (line.strip("| ").split(" | ") for line in out.stdout.splitlines() if line.startswith("| C8 |"))
    cells = dict(zip(head, row, strict=True))
    declared = sum(0.3 + 0.01 * s * (i % 2) - 0.02 * s * (i % 3 == 0) for s in range(3) for i in range(6)) / 18
    fresh = sum(-0.3 + 0.01 * s * (i % 2) - 0.02 * s * (i % 3 == 0) for s in range(3, 6) for i in range(6)) / 18
    assert cells["declared"] == f"**C** {declared:+#.3g}" and cells["per statement"] == cells["declared"]
    assert cells["fresh"] == f"**R** {fresh:+#.3g}"
    assert cells["today's code"] == "" and cells["equal epochs"] == ""
    assert cells["as declared"] == "1 of 2"
    text = doc.read_text()
    assert text.startswith("before\n<!-- robustness:begin -->\n<!-- generated by") and "\nold\n" not in text
    assert "| C8 |" in text and text.endswith("<!-- robustness:end -->\nafter\n")
    doc.write_text(text.replace("| C8 |", "| C8 (edited) |"))
    stale = subprocess.run([*command[:-4], "--check", str(doc)], capture_output=True, text=True,
                           cwd=script.parents[1], env=env)
    assert stale.returncode == 1 and f"{doc}: the robustness table is stale" in stale.stderr
    sys.path.insert(0, str(script.parent))  # the marker helper the script writes with, in this process
    try:
        from readme_study_table import fill_block
    finally:
        sys.path.remove(str(script.parent))
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- robustness:begin -->"):
        fill_block(doc, "<!-- robustness:begin -->", "<!-- robustness:end -->", ["table"])


@pytest.mark.slow  # re-judges every reading of the committed study: about 30 s idle, 90 s beside two trainings
def test_the_committed_robustness_tables_are_current():
    """README's and the doc's robustness tables are what scripts/verdict_robustness.py makes of the committed runs
    now: a new run folder or reading that changes a cell fails here until the tables are written again."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    check = subprocess.run([sys.executable, "scripts/verdict_robustness.py", "--check", "README.md",
                            "docs/survey-reproduction.md"], capture_output=True, text=True, cwd=repo,
                           env={**os.environ, "PYTHONPATH": str(repo / "src")})
    assert check.returncode == 0, check.stderr


@pytest.mark.slow  # a whole `ctbench study report` of the committed study: 2.2-2.7 min idle, 4 beside two trainings
def test_the_committed_study_section_and_readme_table_are_current(tmp_path):
    """The doc's generated study section and README's study table are what `ctbench study report` makes of the
    committed runs now: a run folder, claim file or rule change that moves a verdict fails here until both are
    written again (before, README's table was checked by hand; its claims.csv is not committed). Writes the report
    to multirun/claims/report/ (not committed), as `ctbench study report` does."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    doc = tmp_path / "survey-reproduction.md"  # the committed doc's name: its figure links read the same
    report = subprocess.run([sys.executable, "-m", "ctbench.cli", "study", "report", "--doc", str(doc)],
                            capture_output=True, text=True, cwd=repo, env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    sys.path.insert(0, str(repo / "scripts"))
    try:
        from readme_study_table import split_block
    finally:
        sys.path.remove(str(repo / "scripts"))
    fresh = split_block(doc, study.DOC_BEGIN, study.DOC_END)[1]
    committed = split_block(repo / "docs" / "survey-reproduction.md", study.DOC_BEGIN, study.DOC_END)[1]
    assert fresh == committed, ("docs/survey-reproduction.md: its study section is not the current report's; "
                                "rewrite it with `ctbench study report --doc docs/survey-reproduction.md`")
    table = subprocess.run([sys.executable, "scripts/readme_study_table.py", "multirun/claims/report/claims.csv",
                            "README.md", "--check"], capture_output=True, text=True, cwd=repo, env=env)
    assert table.returncode == 0, table.stderr


def test_lr_probe_check_sets_the_probes_choice_beside_the_grids_with_its_cost_in_seed_sds(tmp_path):
    """scripts/lr_probe_check.py: arm a's probe ties 0.001 with the configured 0.003, so it keeps the grid's 0.003
    (the choice rule's tie-break); arm b's probe picks 0.003 where the grid chose 0.009, at a cost of 0.55 - 0.58 on
    the grid's validation, -1.5 of the seed SD of 0.58/0.60/0.56 (0.02), seed 0 testing 0.700 / 0.680; job times
    from the probe logs' /usr/bin/time lines (60 s of each after its fit, from train.log) and study_jobs.json."""
    import subprocess
    import sys

    def run(folder: Path, history: list[float], mean_dice: float = 0.5) -> None:
        (folder / "report").mkdir(parents=True)
        summary = {"status": "complete", "epochs": 100, "mean_dice": mean_dice,
                   "convergence": {"history": [[5 * (i + 1), v] for i, v in enumerate(history)]}}
        (folder / "report" / "summary.json").write_text(json.dumps(summary))

    grids = {"unet-a-2d-seed0": ({"0.001": 0.60, "0.003": 0.65, "0.009": 0.62}, "0.003", [0.30, 0.30, 0.28]),
             "unet-b-2d-seed0": ({"0.001": 0.50, "0.003": 0.55, "0.009": 0.58}, "0.009", [0.20, 0.40, 0.30])}
    choices, jobs = {}, {"multirun/claims/other": {"seconds": 1200.0}}
    (tmp_path / "multirun" / "claims_lr_probe" / "logs").mkdir(parents=True)
    for arm, (validation, chosen, probe) in grids.items():
        runs = {rate: f"multirun/claims_tuning/{arm}-lr{rate}" for rate in validation}
        choices[arm] = {"configured": "0.003", "validation": validation, "runs": runs, "chosen": chosen}
        for (rate, score), probe_score in zip(validation.items(), probe, strict=True):
            run(tmp_path / runs[rate], [score - 0.1, score], mean_dice={"0.009": 0.70, "0.003": 0.68}.get(rate, 0.5))
            jobs[runs[rate]] = {"seconds": 600.0}
            run(tmp_path / "multirun" / "claims_lr_probe" / f"{arm}-lr{rate}", [probe_score - 0.05, probe_score])
            (tmp_path / "multirun" / "claims_lr_probe" / "logs" / f"{arm}-lr{rate}.log").write_text(
                "training...\n120.5 s wall 100.0 s user\n")
            (tmp_path / "multirun" / "claims_lr_probe" / f"{arm}-lr{rate}" / "train.log").write_text(
                "[2026-12-07 11:17:01,000][x][INFO] - start\n"
                "[2026-12-07 11:18:36,500][x][INFO] - `Trainer.fit` stopped: `max_epochs=15` reached.\n"
                "[2026-12-07 11:19:36,500][x][INFO] - tested\n")
    for seed, best in enumerate([0.58, 0.60, 0.56]):
        run(tmp_path / "multirun" / "claims" / f"unet-b-2d-seed{seed}", [0.4, best])
    (tmp_path / "multirun" / "claims" / "lr_choice.json").write_text(json.dumps(choices))
    (tmp_path / "multirun" / "claims" / "study_jobs.json").write_text(json.dumps(jobs))
    script = Path(__file__).resolve().parents[1] / "scripts" / "lr_probe_check.py"
    out = subprocess.run([sys.executable, str(script), "--root", str(tmp_path), "--markdown"], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(script.parents[1] / "src")}).stdout
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ") for line in out.splitlines()
            if line.startswith("| unet-")}
    assert rows["unet-a-2d-seed0"][3:5] == ["0.300 / 0.300* / 0.280", "0.003, the same"]
    assert rows["unet-b-2d-seed0"][4:] == ["**0.003** (grid: 0.009)", "-0.030 (0.020; -1.5 SD)", "0.700 / 0.680"]
    assert ("1 of 2 finished arms" in out and "the probe 12 min (6 runs; 6 min of it their tests)" in out
            and "the grid 60 min (20 min of it the runs at the chosen rates)" in out
            and "the whole grid is 60 of the 80 min" in out)
