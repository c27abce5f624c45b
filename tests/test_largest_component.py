"""``postprocess=lcc`` without scikit-image (issue 25 item 1): the largest component per class, on scipy only, of the
classes the dataset declares one connected structure (``dataset.single_component_classes``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctbench.engine.checkpoint_schema import SchemaError, validate_dataset
from ctbench.engine.postprocess import largest_component_per_class, single_component_classes
from ctbench.errors import CTBenchError

from cli_helpers import CTBENCH, TINY, read_summary


def test_hand_case_keeps_the_largest_component_of_each_class() -> None:
    label = np.zeros((6, 8), np.uint8)
    label[0, 0:2] = 1          # class 1: 2 voxels
    label[3:5, 0:3] = 1        # class 1: 6 voxels, kept
    label[1, 5], label[2, 6] = 2, 2   # class 2: corner-connected pair (full connectivity): 2 voxels, kept
    label[5, 7] = 2            # class 2: 1 voxel
    label[0, 7], label[3, 7] = 3, 3   # class 3 (two kidneys under one label): not declared, both kept
    expected = label.copy()
    expected[0, 0:2] = 0
    expected[5, 7] = 0
    np.testing.assert_array_equal(largest_component_per_class(label, [1, 2]), expected)
    np.testing.assert_array_equal(largest_component_per_class(label, []), label)


def test_equals_monais_transform_in_3d() -> None:
    pytest.importorskip("skimage")  # MONAI's CPU path; ctbench itself does not need it
    import torch
    from monai.transforms import KeepLargestConnectedComponent

    label = np.random.default_rng(0).integers(0, 4, size=(12, 10, 9)).astype(np.uint8)
    label[np.random.default_rng(1).random(label.shape) < 0.6] = 0
    monai = KeepLargestConnectedComponent(applied_labels=[1, 3], independent=True)(torch.as_tensor(label)[None])
    np.testing.assert_array_equal(largest_component_per_class(label, [1, 3]), np.asarray(monai[0]))


def test_works_without_scikit_image(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` raises ImportError, as on a plain install
    label = np.zeros((5, 5, 5), np.uint8)
    label[0, 0, 0], label[2:4, 2:4, 2:4] = 1, 1
    assert largest_component_per_class(label, [1]).sum() == 8


def test_the_reduced_classes_are_the_datasets_declared_ones() -> None:
    """The label values of dataset.single_component_classes; a dataset that declares none, or a name that is not a
    foreground class, is one line naming the fix; a checkpoint storing anything but distinct short names is refused."""
    dataset = {"name": "mine", "class_names": ["background", "liver", "spleen", "kidney"]}
    assert single_component_classes({**dataset, "single_component_classes": ["spleen", "liver"]}) == [2, 1]
    assert single_component_classes({**dataset, "single_component_classes": []}) == []
    with pytest.raises(CTBenchError, match=r"dataset 'mine' does not say which classes are one connected structure: "
                                           r"set dataset.single_component_classes=\[...\]"):
        single_component_classes(dataset)
    for bad in (["kidneys"], ["background"]):
        with pytest.raises(CTBenchError, match="not a foreground class"):
            single_component_classes({**dataset, "single_component_classes": bad})
    from omegaconf import OmegaConf

    from ctbench.config import compose

    stored = OmegaConf.to_container(compose("train", ["dataset=phantom_study"]).dataset, resolve=True)
    for bad in (["liver", "liver"], "liver", ["../x"], [3]):
        with pytest.raises(SchemaError, match="dataset.single_component_classes"):
            validate_dataset({**stored, "single_component_classes": bad}, "checkpoint x.ckpt")
    # another dataset's names pass the schema (predict's own dataset may lend them to an older checkpoint) and are
    # refused where lcc reads them, above
    validate_dataset({**stored, "single_component_classes": ["kidney", "pancreas"]}, "checkpoint x.ckpt")


def test_lcc_on_a_dataset_that_declares_no_classes_is_refused_before_any_work(tmp_path: Path, monkeypatch,
                                                                             capsys) -> None:
    """`ctbench train dataset=nifti postprocess=lcc`: one line naming dataset.single_component_classes, exit 2,
    no run folder; the phantom's default reduces liver and spleen, not the kidneys' class or the lesions."""
    from ctbench.cli import main
    from ctbench.config import compose

    monkeypatch.chdir(tmp_path)
    try:
        code = main(["train", "dataset=nifti", "dataset.root=.", "postprocess=lcc"])
    except SystemExit as stop:
        code = int(stop.code or 0)
    assert code == 2
    assert "dataset.single_component_classes=[...]" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "outputs").exists()
    assert single_component_classes(compose("train", ["dataset=phantom_study"]).dataset) == [1, 2]


@pytest.mark.slow
def test_train_and_predict_with_lcc_without_scikit_image(tmp_path: Path) -> None:
    """`ctbench train debug=fast postprocess=lcc` tests and reports, and predict writes a one-component mask,
    in processes where scikit-image cannot be imported."""
    blocker = tmp_path / "no_skimage" / "skimage"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('scikit-image is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent), "OMP_NUM_THREADS": "2"}

    def ctbench(*args: str) -> None:
        proc = subprocess.run([CTBENCH, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    assert subprocess.run([sys.executable, "-c", "import skimage"], env=env,
                          capture_output=True).returncode == 1
    run = tmp_path / "run"
    ctbench("train", *TINY, "trainer.max_epochs=1", "postprocess=lcc", f"hydra.run.dir={run}")
    assert read_summary(run)["status"] == "complete"
    image = next((tmp_path / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))
    out = tmp_path / "masks"
    ctbench("predict", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={image}", f"output_dir={out}",
            "postprocess=lcc", "progress_bar=false")
    mask = np.asarray(nib.load(next(out.glob("*.nii.gz"))).dataobj)
    np.testing.assert_array_equal(largest_component_per_class(mask, [1, 2]), mask)  # liver and spleen


def test_declaring_the_classes_leaves_earlier_runs_the_same_runs() -> None:
    """dataset.single_component_classes, added after the study's runs were made, is read only by postprocess=lcc:
    a run config without it, or with other classes, is the same run (fingerprint, resume, a complete run)."""
    from ctbench.engine.resume import config_differences, fingerprint

    now = {"model": {"name": "unet"}, "dataset": {"name": "phantom_study", "single_component_classes": ["liver"]}}
    before = {"model": {"name": "unet"}, "dataset": {"name": "phantom_study"}}
    assert fingerprint(now) == fingerprint(before)
    assert config_differences(before, now, finished=True) == []
    assert config_differences(before, {**now, "model": {"name": "vnet"}}) == ["model.name: 'unet' -> 'vnet'"]


def test_predict_reduces_only_the_declared_classes() -> None:
    """ctbench predict's label map (``label_map_of``): a declared class keeps its largest component, an undeclared
    class (two kidneys under one label) keeps both, and no class given leaves the arg-max as it is."""
    import torch

    from ctbench.engine.predict import label_map_of

    label = np.zeros((1, 9), np.int64)
    label[0, [0, 1, 3]] = 1      # class 1: components of 2 and 1 voxels
    label[0, [5, 7, 8]] = 2      # class 2: components of 1 and 2 voxels
    probs = torch.nn.functional.one_hot(torch.as_tensor(label), 3).movedim(-1, 0).float()
    expected = label.copy()
    expected[0, 3] = 0
    np.testing.assert_array_equal(label_map_of(probs.clone(), [1]), expected)
    np.testing.assert_array_equal(label_map_of(probs.clone(), []), label)
