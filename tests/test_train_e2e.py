"""End to end on the tiny phantom: train -> report; the report's numbers come from the model."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from ctbench.data.phantom_files import LABELS

from cli_helpers import TINY, TRAINED_RUN, ctbench, read_summary


def test_report_files_hold_model_numbers(trained_run):
    summary = read_summary(trained_run)
    assert summary["status"] == "complete" and summary["model"] == "unet" and summary["loss"] == "dice_ce"
    assert summary["n_cases"] == 2 and summary["dims"] == 3 and summary["params"] > 100_000
    assert set(summary["per_class"]) == {"liver", "spleen", "kidney", "lesion"}
    for key in ("seed", "git_commit", "versions", "empty_policy", "epochs", "train_seconds"):
        assert key in summary
    rows = list(csv.DictReader((trained_run / "report" / "per_case.csv").open()))
    assert len(rows) == 2 * 4 and rows[0].keys() >= {"case", "class", "dice", "iou", "hd95"}
    liver = [float(r["dice"]) for r in rows if r["class"] == "liver"]
    assert summary["per_class"]["liver"]["dice"] == pytest.approx(np.mean(liver), abs=1e-6)
    for name in ("best.ckpt", "last.ckpt"):
        assert (trained_run / "checkpoints" / name).stat().st_size > 1000
    assert (trained_run / "report" / "report.md").read_text().count("![overlay_") == 1
    assert list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    splits = json.loads((trained_run / "splits.json").read_text())
    assert not set(splits["test"]) & set(splits["train"]) and not set(splits["val"]) & set(splits["train"])


@pytest.mark.slow
def test_report_numbers_come_from_the_trained_weights(trained_run, workdir):
    """The same pipeline with a learning rate of zero (untrained weights) scores far lower."""
    summary = read_summary(trained_run)
    untrained = workdir / "outputs" / "untrained"
    ctbench("train", *TINY, "trainer.max_epochs=1", "dataset.phantom.cases=8", "optim.optimizer.lr=0",
            "optim.scheduler.warmup_steps=0", f"hydra.run.dir={untrained}", cwd=workdir)
    assert summary["per_class"]["liver"]["dice"] > read_summary(untrained)["per_class"]["liver"]["dice"] + 0.2


def test_eval_reproduces_the_test_report(trained_run, workdir):
    out = workdir / "outputs" / "eval"
    ctbench("eval", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", "debug=fast", "progress_bar=false",
            f"hydra.run.dir={out}", cwd=workdir)  # data locations from the local configs, as in training
    again, first = read_summary(out), read_summary(trained_run)
    assert again["model"] == "unet" and again["n_cases"] == first["n_cases"]
    assert again["mean_dice"] == pytest.approx(first["mean_dice"], abs=1e-6)


def test_predict_writes_labels_in_each_inputs_geometry(trained_run, workdir, tmp_path):
    images = sorted((workdir / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))[:2]
    assert {nib.aff2axcodes(nib.load(p).affine) for p in images} == {("R", "A", "S"), ("L", "P", "S")}
    folder = tmp_path / "images"  # a folder of two inputs, one RAS and one LPS
    folder.mkdir()
    for image in images:
        shutil.copy(image, folder)
    out = workdir / "predictions"
    ctbench("predict", f"ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}", f"input={folder}",
            f"output_dir={out}", "progress_bar=false", cwd=workdir)
    for image in images:
        src, pred = nib.load(image), nib.load(out / image.name)
        assert pred.shape == src.shape
        np.testing.assert_allclose(pred.affine, src.affine, atol=1e-5)
        assert pred.header.get_zooms() == src.header.get_zooms()
        labels = np.asarray(pred.dataobj)
        assert set(np.unique(labels)) <= set(LABELS)
        truth = np.asarray(nib.load(str(image).replace("imagesTr", "labelsTr")).dataobj)
        # the liver mask lands where the truth is, whatever the file's orientation
        overlap = ((labels == 1) & (truth == 1)).sum() / max(1, (truth == 1).sum())
        assert overlap > 0.3


@pytest.mark.slow
def test_predict_does_not_import_lightning(trained_run, workdir):
    """``ctbench predict`` builds the network from the checkpoint without Lightning (seconds of start-up)."""
    image = sorted((workdir / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))[0]
    out = workdir / "predictions_no_lightning"
    code = ("import sys\nfrom ctbench.cli import main\n"
            f"rc = main(['predict', 'ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}', 'input={image}', "
            f"'output_dir={out}', 'progress_bar=false'])\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'lightning')\n"
            "assert rc == 0 and not loaded, (rc, loaded[:5])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / image.name).is_file()


def test_existing_run_is_not_overwritten_and_another_config_is_refused(trained_run, workdir, tmp_path):
    """The same command again skips the complete run; a longer run asked for in its folder is refused, one line
    naming the key, not skipped as if that run existed."""
    proc = ctbench("train", *TRAINED_RUN, f"hydra.run.dir={trained_run}", cwd=workdir)
    assert "already holds a complete report" in proc.stdout
    run = shutil.copytree(trained_run, tmp_path / "run")
    proc = ctbench("train", *TRAINED_RUN, "trainer.max_epochs=12", f"hydra.run.dir={run}", cwd=workdir, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "trainer.max_epochs: 8 -> 12" in proc.stderr and "overwrite=true" in proc.stderr
