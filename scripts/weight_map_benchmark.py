#!/usr/bin/env python
"""Where the ``unet_weighted`` weight map should be computed: per training patch (in the loss, every step)
or once per case on the whole volume (in the cached training chain, what ``ctbench train`` does).

Times ``unet_weight_map`` on the default phantom's preprocessed training volumes and on patches cut
from them (the default 64^3, 2 per case per epoch), interleaved; prints the medians and the cost per
epoch of each placement.

    .venv/bin/python scripts/weight_map_benchmark.py            # run from the folder holding ./data
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    from monai import transforms as T

    from ctbench.config import compose
    from ctbench.data.datasets import list_cases
    from ctbench.data.transforms import preprocessing
    from ctbench.data.weight_maps import unet_weight_map

    cfg = compose("train", args.override)
    patch = list(cfg.dataset.patch_size_3d)
    chain = T.Compose([*preprocessing(cfg.dataset.preprocessing, ["image", "label"], track_meta=False),
                       T.SpatialPadd(["image", "label"], spatial_size=patch)])
    crop = T.RandSpatialCrop(patch, random_size=False)
    crop.set_random_state(0)
    whole, per_patch = [], []
    for case in list_cases(cfg.dataset)[: args.cases]:
        label = chain({"image": case["image"], "label": case["label"]})["label"]
        start = time.perf_counter()
        unet_weight_map(label[0].numpy())
        whole.append(time.perf_counter() - start)
        window = crop(label)[0].numpy()
        start = time.perf_counter()
        unet_weight_map(window)
        per_patch.append(time.perf_counter() - start)
    samples = int(cfg.dataset.samples_per_volume)
    w, p = statistics.median(whole), statistics.median(per_patch)
    print("\n".join([
        f"whole volume (once per case, cached): {w * 1000:.0f} ms median over {len(whole)} cases",
        f"{'x'.join(map(str, patch))} patch (every sample, every epoch): {p * 1000:.0f} ms median",
        f"per case and epoch: cached 0 ms after the first epoch vs {samples * p * 1000:.0f} ms in the loss "
        f"({samples} patches per case)"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
