#!/usr/bin/env python
"""Seconds per volume of 2D prediction with ``inference.window_2d=patch`` (four overlapping training patches
per 171 x 131 slice) against ``slice`` (one air-padded 192 x 160 window per slice), interleaved, one thread:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/window_2d_benchmark.py                 # unet deeplabv3 fcn8s
    OMP_NUM_THREADS=1 .venv/bin/python scripts/window_2d_benchmark.py segnet --repeats 5

Each repeat times both modes back to back on the same random volume (the mean phantom_study test case,
2 x 2 x 3 mm) and network; the ratio is the median of the per-repeat ratios, so load on a shared machine
cancels out.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from ctbench.config import compose
    from ctbench.engine.components import build_model
    from ctbench.engine.inference import SlidingWindowPredictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["unet", "deeplabv3", "fcn8s"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--volume", type=int, nargs=3, default=(171, 131, 67))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'network':<14}{'patch s':>9}{'slice s':>9}{'patch/slice':>13}")
    for name in args.models:
        cfg = compose("train", ["experiment=claims/unet_dice_ce", f"model={name}"])
        model = build_model(cfg).eval()
        roi, batch = list(cfg.dataset.patch_size_2d), int(cfg.inference.sw_batch_size_2d)
        predictors = {mode: SlidingWindowPredictor(roi, float(cfg.inference.overlap), batch, window_2d=mode)
                      for mode in ("patch", "slice")}
        volume = torch.randn(1, int(cfg.dataset.in_channels), *args.volume)
        times: dict[str, list[float]] = {"patch": [], "slice": []}
        predictors["slice"](model, volume)  # warm-up
        for _ in range(args.repeats):
            for mode, predictor in predictors.items():
                start = time.perf_counter()
                predictor(model, volume)
                times[mode].append(time.perf_counter() - start)
        ratio = statistics.median(p / s for p, s in zip(times["patch"], times["slice"], strict=True))
        print(f"{name:<14}{statistics.median(times['patch']):>9.2f}{statistics.median(times['slice']):>9.2f}"
              f"{ratio:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
