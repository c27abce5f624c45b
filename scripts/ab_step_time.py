#!/usr/bin/env python
"""Training-step time of one network under two sets of overrides, interleaved step by step, one thread.

On a machine other jobs share (the study runs beside everything else), two separate timings minutes apart
differ by more than most design changes; steps that alternate A, B, B, A, ... see the same load, so their
ratio is what the change costs:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/ab_step_time.py unet --b model.skip=add

A step is forward, loss, backward and an Adam update on the batch ``scripts/study_cost.py`` times (the study
preset's patch size, as many patches as the loader gives), random inputs, without the data pipeline. Prints
each arm's median seconds per step and the median and quartiles of the per-pair ratio B / A.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from ctbench.config import compose
    from ctbench.engine.components import build_loss, build_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model config name")
    parser.add_argument("--a", nargs="*", default=[], help="overrides of arm A (default: none)")
    parser.add_argument("--b", nargs="*", default=[], help="overrides of arm B")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = {}
    for arm, overrides in (("A", args.a), ("B", args.b)):
        cfg = compose("train", ["experiment=claims/unet_dice_ce", f"model={args.model}", f"dims={args.dims}",
                                *overrides])
        ds = cfg.dataset
        patch = list(ds.patch_size_3d if args.dims == 3 else ds.patch_size_2d)
        per_volume = int(ds.samples_per_volume)
        batch = max(1, int(ds.batch_size_3d if args.dims == 3 else ds.batch_size_2d) // per_volume) * per_volume
        model = build_model(cfg).train()
        x, y = torch.randn(batch, int(ds.in_channels), *patch), torch.randint(0, int(ds.num_classes), (batch, 1, *patch))
        arms[arm] = (model, build_loss(cfg), torch.optim.Adam(model.parameters(), lr=1e-3), x, y)

    def step(arm: str) -> float:
        model, loss, opt, x, y = arms[arm]
        start = time.perf_counter()
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    for arm in "ABAB":  # warm-up
        step(arm)
    times: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(args.pairs):
        for arm in ("AB" if i % 2 == 0 else "BA"):
            times[arm].append(step(arm))
    ratios = [b / a for a, b in zip(times["A"], times["B"], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    print(f"{args.model} {args.dims}D, batch {tuple(arms['A'][3].shape)}, {args.pairs} interleaved pairs")
    print(f"A {' '.join(args.a) or '(defaults)'}: {statistics.median(times['A']):.3f} s/step")
    print(f"B {' '.join(args.b) or '(defaults)'}: {statistics.median(times['B']):.3f} s/step")
    print(f"B / A per pair: median {median:.3f} (quartiles {q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main()
