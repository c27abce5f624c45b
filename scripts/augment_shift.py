"""Does ``augment=nnunet`` earn its place? Test Dice under a train/test shift, and loader throughput.

Shift: train on the default phantom (contrast-enhanced organs, 2-3.5 mm voxels); test on a new phantom
(other seed, 1.5-2.5 mm voxels) whose organ enhancement is scaled by ``--enhancement`` (0.6: liver 73,
spleen 94, kidney 124 HU instead of 95/130/180, an earlier or weaker contrast phase). Each run is the
real CLI: ``ctbench train`` (same budget for both groups), ``ctbench predict`` on the shifted and on the
unshifted test phantom, ``ctbench score``. Loader: training patches per second of the real loader per
``augment`` choice against the patches per second the default model's training step consumes.

    python scripts/augment_shift.py --out /tmp/augment_shift --seeds 0 1 2 --epochs 20
    python scripts/augment_shift.py --out /tmp/augment_shift2 --skip-loader --epochs 24 \
        dataset.phantom.cases=14 dataset.test_cases=2 'dataset.preprocessing.spacing=[6,6,6]' \
        'dataset.patch_size_3d=[32,32,32]' trainer.check_val_every_n_epoch=4
    python scripts/augment_shift.py --out /tmp/augment_shift --loader-only
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = {1: "liver", 2: "spleen", 3: "kidney", 4: "lesion"}
ORGANS = ("liver", "spleen", "kidney")


def ctbench(*args: str, log: Path) -> None:
    """Run one ``ctbench`` command, its output appended to ``log``; stop on failure."""
    command = [sys.executable, "-m", "ctbench.cli", *args]
    with log.open("a") as fh:
        fh.write(f"\n$ ctbench {' '.join(args)}\n")
        fh.flush()
        done = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"ctbench {' '.join(args)} failed ({done.returncode}); see {log}")


def shifted_test_set(out: Path, enhancement: float, log: Path) -> tuple[Path, Path, Path]:
    """A new phantom (seed 101, 6 cases, finer voxels): unshifted images, shifted images, labels."""
    import nibabel as nib

    from ctbench.data.synthetic import HU

    root = out / "test_phantom"
    if not (root / "dataset.json").exists():
        ctbench("synth", str(root), "--cases", "6", "--seed", "101", "--voxel-mm", "1.5", "2.5", log=log)
    plain, shifted = root / "imagesTr", root / "imagesShift"
    shifted.mkdir(exist_ok=True)
    for image_path in sorted(plain.glob("*.nii.gz")):
        case = image_path.name.removesuffix(".nii.gz").removesuffix("_0000")
        label_img = nib.load(str(root / "labelsTr" / f"{case}.nii.gz"))
        image = nib.load(str(image_path))
        hu = np.asarray(image.dataobj, dtype=np.float32)
        label = np.asarray(label_img.dataobj)
        for index, name in CLASSES.items():
            if name in ORGANS:
                hu[label == index] += (enhancement - 1.0) * (HU[name] - HU["soft"])
        header = image.header.copy()
        header.set_data_dtype(np.int16)
        nib.save(nib.Nifti1Image(np.rint(hu).astype(np.int16), image.affine, header), str(shifted / image_path.name))
    return plain, shifted, root / "labelsTr"


def organ_dice(summary: Path) -> dict[str, float]:
    per_class = json.loads(summary.read_text())["per_class"]
    dice = {name: float(per_class[name]["dice"]) for name in ORGANS}
    return {**dice, "organs": float(np.mean(list(dice.values())))}


def shift_experiment(out: Path, seeds: list[int], epochs: int, enhancement: float, overrides: list[str]) -> dict:
    log = out / "commands.log"
    plain, shifted, labels = shifted_test_set(out, enhancement, log)
    labels_arg = [f"{i}={n}" for i, n in CLASSES.items()]
    results = {}
    for augment in ("none", "nnunet"):
        for seed in seeds:
            run = out / "runs" / f"{augment}-seed{seed}"
            if not (run / "report" / "summary.json").exists():
                shutil.rmtree(run, ignore_errors=True)
                start = time.perf_counter()
                ctbench("train", f"augment={augment}", f"seed={seed}", f"trainer.max_epochs={epochs}",
                        f"paths.root_dir={out}", f"hydra.run.dir={run}", "progress_bar=false", *overrides, log=log)
                print(f"{augment} seed {seed}: trained in {time.perf_counter() - start:.0f} s", flush=True)
            row = {"in_distribution": organ_dice(run / "report" / "summary.json")}
            for name, images in (("new_phantom", plain), ("shifted", shifted)):
                masks, scores = run / f"pred_{name}", run / f"score_{name}"
                if not (scores / "summary.json").exists():
                    ctbench("predict", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"input={images}",
                            f"output_dir={masks}", "overwrite=true", f"hydra.run.dir={run / ('predict_' + name)}",
                            log=log)
                    ctbench("score", str(masks), str(labels), "--out", str(scores), "--labels", *labels_arg, log=log)
                row[name] = organ_dice(scores / "summary.json")
            results[f"{augment}-seed{seed}"] = row
            print(augment, seed, json.dumps(row), flush=True)
    return results


def loader_throughput(out: Path, batches: int) -> dict:
    """Patches/s of the real training loader per ``augment`` choice, and of the default training step."""
    import torch
    from omegaconf import OmegaConf

    from ctbench.config import compose
    from ctbench.data.datamodule import CTDataModule

    figures: dict[str, float] = {}
    for augment in ("none", "light", "nnunet"):
        cfg = compose("train", [f"paths.root_dir={out}", f"augment={augment}"])
        data = CTDataModule(cfg.dataset, 3, 0, Path(cfg.dataset.cache_dir),
                            augment=OmegaConf.to_container(cfg.augment))
        data.prepare_data()
        data.setup()
        loader = data.train_dataloader()
        next(iter(loader))  # the cache is filled once; later epochs are what training sees
        patches, start = 0, time.perf_counter()
        while patches < batches * int(cfg.dataset.batch_size_3d):
            for batch in loader:
                patches += batch["image"].shape[0]
        figures[f"loader_{augment}"] = patches / (time.perf_counter() - start)
    from hydra.utils import instantiate

    model = instantiate(cfg.model, _convert_="all")
    loss = instantiate(cfg.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    image = torch.randn(2, 1, *cfg.dataset.patch_size_3d)
    label = torch.randint(0, 5, (2, 1, *cfg.dataset.patch_size_3d))
    steps, start = 0, 0.0
    for step in range(4):  # the first step is warm-up
        if step == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        loss(model(image), label).backward()
        optimizer.step()
        steps += step >= 1
    figures["model_consumes"] = 2 * steps / (time.perf_counter() - start)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--enhancement", type=float, default=0.6)
    parser.add_argument("--batches", type=int, default=30, help="loader batches per augment choice")
    parser.add_argument("--loader-only", action="store_true")
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("overrides", nargs="*", help="more overrides for every `ctbench train` (a cheaper phantom)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {} if args.skip_loader else {"loader": loader_throughput(args.out, args.batches)}
    print(json.dumps(results.get("loader")), flush=True)
    if not args.loader_only:
        results["shift"] = shift_experiment(args.out, args.seeds, args.epochs, args.enhancement, args.overrides)
        for augment in ("none", "nnunet"):
            rows = [v for k, v in results["shift"].items() if k.startswith(augment)]
            results[f"mean_{augment}"] = {where: {"organs_mean": float(np.mean([r[where]["organs"] for r in rows])),
                                                  "organs_std": float(np.std([r[where]["organs"] for r in rows]))}
                                          for where in ("in_distribution", "new_phantom", "shifted")}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "shift"}, indent=1))


if __name__ == "__main__":
    main()
