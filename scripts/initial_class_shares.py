"""Which class an untrained network predicts, per seed: the share of a training batch's voxels whose argmax is
each class, for the network a run's config builds at seeds 0, 1 and 2 (the weights ``ctbench train`` starts from:
``seed_everything`` then ``build_module``, as in ``ctbench.engine.run``), on the first training batch of seed 0.

Asks whether a run that loses a class from its first validation (seed 2's spleen with the background out of a
region loss, ``docs/survey-reproduction.md``) already did so at initialisation.

    PYTHONPATH=src .venv/bin/python scripts/initial_class_shares.py RUN/resolved_config.yaml [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
from omegaconf import OmegaConf

from ctbench.engine.build import build_datamodule, build_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a run's resolved_config.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    cfg = OmegaConf.load(args.config)
    names = list(cfg.dataset.class_names)
    batch = None
    for seed in args.seeds:
        cfg.seed = seed
        pl.seed_everything(seed, workers=True, verbose=False)
        module = build_module(cfg).eval()
        if batch is None:
            data = build_datamodule(cfg, int(getattr(module.model, "size_divisor", 1)), module.loss_fn)
            data.setup("fit")
            first = next(iter(data.train_dataloader()))
            batch = first["image"] if isinstance(first, dict) else first[0]
        with torch.no_grad():
            labels = module.model(batch).argmax(1)
        shares = torch.bincount(labels.flatten(), minlength=len(names)).double() / labels.numel()
        print(f"seed {seed}: " + ", ".join(f"{n} {100 * float(v):.1f} %" for n, v in zip(names, shares, strict=True)))


if __name__ == "__main__":
    main()
