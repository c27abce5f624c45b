#!/usr/bin/env python
"""Labels from probabilities: ``ctbench.engine.inference.channel_argmax`` against ``torch.argmax`` on the
same tensor, interleaved round by round (medians; the ratio is torch / ctbench).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/argmax_benchmark.py [--rounds 15] [--classes 4]

Shapes: a test volume on its file's grid, ``[C, 171, 131, 67]`` (the phantom test set's mean case), and a
validation batch, ``[1, C, 171, 131, 67]`` along dim 1. Both give the same labels (checked every round).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ctbench.engine.inference import channel_argmax


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--classes", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = {"volume [C, D, H, W], dim 0": (torch.rand(args.classes, 171, 131, 67), 0),
             "batch [1, C, D, H, W], dim 1": (torch.rand(1, args.classes, 171, 131, 67), 1)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.rounds} rounds")
    print(f"{'shape':32} {'torch.argmax s':>15} {'channel_argmax s':>17} {'ratio':>7}")
    for name, (probs, dim) in cases.items():
        torch_s, ours_s = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            expected = probs.argmax(dim)
            torch_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            got = channel_argmax(probs, dim)
            ours_s.append(time.perf_counter() - start)
            assert torch.equal(got.long(), expected), "channel_argmax disagrees with torch.argmax"
        a, b = statistics.median(torch_s), statistics.median(ours_s)
        print(f"{name:32} {a:15.4f} {b:17.4f} {a / b:6.1f}x")


if __name__ == "__main__":
    main()
