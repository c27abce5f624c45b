"""What ``SigtermOnEveryRank`` adds to a DDP training step: one all-reduce (max) of one number and its ``.item()``,
timed on two gloo CPU processes, against a same-size broadcast with ``.item()`` (what Lightning 2.6's
``_broadcast_sigterm_tensor`` already does every step), measured in the same run.

    .venv/bin/python scripts/sigterm_allreduce_cost.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, steps: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    flag = torch.zeros(1)
    times = {}
    for name in ("broadcast (Lightning)", "all_reduce max (ctbench)") * 2:  # each twice, the second counted
        dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            if name.startswith("broadcast"):
                dist.broadcast(flag, src=0)
            else:
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            flag.item()
        times[name] = (time.perf_counter() - start) / steps
    if rank == 0:
        base = times["broadcast (Lightning)"]
        for name, seconds in times.items():
            print(f"{name}: {seconds * 1e6:.1f} us a step ({seconds / base:.2f}x the broadcast)")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--port", type=int, default=29533)
    args = parser.parse_args()
    mp.spawn(worker, args=(args.steps, args.port), nprocs=2)


if __name__ == "__main__":
    main()
