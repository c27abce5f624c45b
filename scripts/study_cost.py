#!/usr/bin/env python
"""Per network of the CPU study: seconds per training step and per test volume, one thread.

The study's budget (docs/survey-reproduction.md, *The study's size and time*) is set from these figures:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/study_cost.py                 # every study network, study=cpu
    OMP_NUM_THREADS=1 .venv/bin/python scripts/study_cost.py unet fcn8s -- model.features=[16,32,64,128]
    .venv/bin/python scripts/study_cost.py --device cuda                      # the same figures on a GPU

A step is forward, loss, backward and an Adam update on one batch of the preset's patch size, as many patches
as the loader gives (``ctbench.data.datamodule.batch_layout``: ``batch_size`` patches; the median of ``--steps``
steps after 2 warm-up steps), without the data pipeline; a test volume is one pass of the preset's predictor (``inference.*``:
one window per whole slice in 2D) over a volume of the study's test grid (``--volume``, voxels at 2 x 2 x 3 mm), the median of 3.
"""

from __future__ import annotations

import argparse
import statistics
import time

STUDY_MODELS = ("unet", "fcn32s", "fcn16s", "fcn8s", "segnet", "attention_unet", "cascaded_fcn", "deeplabv1",
                "deeplabv2", "deeplabv3", "deeplabv3p", "pspnet", "drinet", "fcdensenet")


def main() -> None:
    import torch

    from ctbench.config import compose
    from ctbench.data.datamodule import batch_layout
    from ctbench.engine.components import build_loss, build_model
    from ctbench.engine.segmenter import Segmenter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=[*STUDY_MODELS, "unet@3", "pspnet@3"],
                        help="model config names; NAME@3 for the 3D network")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--volume", type=int, nargs=3, default=(171, 131, 67),
                        help="test volume (x y z voxels; default: the mean phantom_study case at 2 x 2 x 3 mm)")
    parser.add_argument("--override", nargs="*", default=[], help="extra overrides for every network")
    parser.add_argument("--device", default="cpu", help="cpu (one thread, as the CPU study runs) or cuda (fp32)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)

    def now() -> float:
        if device.type == "cuda":  # the GPU's queued work is part of the step
            torch.cuda.synchronize(device)
        return time.perf_counter()

    print(f"{'network':<16}{'params':>10}{'s/step':>9}{'s/volume':>10}")
    for name in args.models:
        model_name, _, dims = name.partition("@")
        dims = int(dims or 2)
        cfg = compose("train", ["experiment=claims/unet_dice_ce", f"model={model_name}", f"dims={dims}",
                                *args.override])
        if model_name == "fcdensenet":  # C13's width (configs/experiment/claims/c13_fcdensenet.yaml)
            cfg = compose("train", ["experiment=claims/c13_fcdensenet", f"dims={dims}", *args.override])
        model, loss = build_model(cfg).to(device), build_loss(cfg)
        ds = cfg.dataset
        patch = list(ds.patch_size_3d if dims == 3 else ds.patch_size_2d)
        volumes, per_volume = batch_layout(int(ds.batch_size_3d if dims == 3 else ds.batch_size_2d),
                                           int(ds.samples_per_volume))
        batch = volumes * per_volume  # the loader's batch (ctbench.data.datamodule.batch_layout)
        classes = int(ds.num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(batch, int(ds.in_channels), *patch, device=device)
        y = torch.randint(0, classes, (batch, 1, *patch), device=device)
        times = []
        model.train()
        for i in range(args.steps + 2):
            start = now()
            opt.zero_grad()
            out = model(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            value = loss(out, y)
            value.backward()
            opt.step()
            if i >= 2:
                times.append(now() - start)
        model.eval()
        volume = torch.randn(1, int(ds.in_channels), *args.volume, device=device)
        predictor = Segmenter(model, cfg).predictor  # the preset's own windows (inference.window_2d)
        infer = []
        for _ in range(3):
            start = now()
            predictor(model, volume)
            infer.append(now() - start)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<16}{params:>10,}{statistics.median(times):>9.3f}{statistics.median(infer):>10.2f}", flush=True)


if __name__ == "__main__":
    main()
