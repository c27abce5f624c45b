"""Generate docs/models.md: every survey architecture with its parameters and CPU cost.

For each ``configs/model/*.yaml`` (default widths, 1 input channel, the phantom's 5 classes) the
table gives the parameter count in 2D and 3D, the published 2D preset's count, and the wall time of
one forward + backward pass of one 256^2 slice (2D) and one 96^3 patch (3D), batch 1, float32, on
this machine's CPU (best of ``--repeats`` after a warm-up). It also times the dense CRF
(``postprocess=crf``) on a 128^3 volume. Optionally (``--dice``) it trains each model for a fixed
short budget on the synthetic phantom with ``ctbench train`` and reports the test Dice.

    python scripts/model_table.py [--out docs/models.md] [--threads 2] [--repeats 2]
                                  [--dice [--dice-epochs 30] [--dice-cache FILE]]
    python scripts/model_table.py --presets-only   # rewrite only the presets section (no timing)

The presets section puts each ``preset=paper`` / ``preset=reference_code`` network's parameter count
(built on the meta device) beside the count of the source it follows, derived as
``tests/models/test_models_params.py`` derives it, with what still differs and why.

Run it on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ctbench.engine.components import build_model
from ctbench.models.base import parameter_count

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "configs" / "model"
NUM_CLASSES = 5

# the paper presets that reproduce published 2D parameter counts (inputs/classes of each benchmark)
PRESETS = {
    "fcn8s": ("vgg16", 3, 21, "134M"),
    "segnet": ("paper", 3, 11, "29.5M"),
    "unet": ("paper", 1, 2, "31.0M"),
    "fcdensenet": ("fcdensenet103", 3, 11, "9.4M"),
    "deeplabv1": ("vgg16", 3, 21, "20.5M"),
    "vnet": ("paper", 1, 2, None),
    "deeplabv2": ("resnet101", 3, 21, None),
    "deeplabv3": ("resnet101", 3, 21, None),
    "deeplabv3p": ("resnet101", 3, 21, None),
    "pspnet": ("resnet101", 3, 21, None),
    "attention_unet": ("paper", 1, 2, None),
}


#: (model, preset, dims, in channels, classes, reference count, where the reference count comes from,
#: what differs from the source and why); references derived in tests/models/test_models_params.py
SOURCES = [
    ("unet", "paper", 2, 1, 2, 31_030_658,
     "Ronneberger et al. 2015 Fig. 1, layer by layer",
     "MONAI BasicUNet: its last up-convolution keeps 128 channels (+69,696); padded convolutions (output = input "
     "size; the paper's are unpadded, 572 -> 388); no normalisation, as the paper"),
    ("vnet", "paper", 3, 1, 2, 61_982_682,
     "faustomilletari/VNet `Prototxt/train_noPooling_ResNet_cinque.prototxt`, every layer summed",
     "stages 1 / 1, 2, 3, 3 down and 3, 2, 1, 1 up, PReLU, as the prototxt (the paper's text only says "
     "\"one to three\" convolutions per stage); MONAI's blocks add batch norm and drop the conv biases"),
    ("vnet", "monai", 3, 1, 2, None,
     "MONAI `VNet`",
     "stages 1, 2, 3, 2 down, 2, 2, 1, 1 up, ELU: two 256->256 5^3 convolutions (16.4M) fewer than the prototxt"),
    ("attention_unet", "paper", 3, 1, 2, 24_557_317,
     "Oktay et al. 2018 Fig. 1-2 as described, counted layer by layer",
     "the paper gives no widths: 64-512 is ctbench's; three poolings, one grid gate (2x-subsampled skip, gating "
     "from the next coarser scale) per skip; its deep supervision is `model.deep_supervision=true`"),
    ("attention_unet", "reference_code", 3, 1, 2, 6_472_784,
     "ozan-oktay/Attention-Gated-Networks `unet_CT_multi_att_dsv_3D(feature_scale=4)`, built and counted",
     "the same layers (16-256, four poolings, two gates per skip on the three coarser skips, fused class heads); "
     "`deep_supervision=true` supervises those heads at their own resolution; 2D is ctbench's extension"),
    ("segan", "reference_code", 2, 3, 1, 9_393_088,
     "YuanXue1993/SegAN `net.py` `NetC` (the critic alone, 3 input channels)",
     "critic convs keep a bias (+1,984); layer weights 1, 1, 2, 2, 2, 2, 4 on one concatenated mean and "
     "adversarial weight 1 as `train.py`; the segmentor is ctbench's U-Net, not their `NetS`"),
    ("fcn8s", "vgg16", 2, 3, 21, 134_000_000, "Long et al. 2015: 134M", "VGG-16 without BN, as the paper"),
    ("segnet", "paper", 2, 3, 11, 29_500_000, "Badrinarayanan et al.: 29.5M", ""),
    ("deeplabv1", "vgg16", 2, 3, 21, 20_500_000, "Chen et al. 2014 (LargeFOV): 20.5M", ""),
    ("fcdensenet", "fcdensenet56", 2, 3, 11, 1_377_000,
     "SimJeg/FC-DenseNet reference code: 1.38M (the paper's Table 2 rounds to 1.5M)", ""),
    ("fcdensenet", "fcdensenet67", 2, 3, 11, 3_500_000, "Jégou et al. Table 2: 3.5M", ""),
    ("fcdensenet", "fcdensenet103", 2, 3, 11, 9_400_000, "Jégou et al. Table 2: 9.4M", ""),
    ("deeplabv3", "resnet101", 2, 3, 21, None, "no count published",
     "the image-pooling branch has no batch norm (the paper's has one): one value per channel cannot be "
     "normalised at batch size 1, common for 3D CT"),
    ("pspnet", "resnet101", 2, 3, 21, None, "no count published",
     "no auxiliary loss: the paper adds a second classifier on res4b22 at weight 0.4 for training only"),
]


def presets_section() -> list[str]:
    """Markdown: each source-following preset's count beside its source's, and what differs."""
    lines = ["## Presets: the paper, the authors' code and ctbench", "",
             "Generated by `python scripts/model_table.py --presets-only`. `ctbench` is the preset built here "
             "(meta device); `reference` is the source's count, derived in `tests/models/test_models_params.py` "
             "(each preset within 2 % of it).", "",
             "| model | preset | dims, in → classes | ctbench | reference | Δ | reference counted from | what differs |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for name, preset, dims, cin, ncls, reference, source, differs in SOURCES:
        with torch.device("meta"):
            n = parameter_count(build(name, dims, cin, ncls, preset=preset))
        if name == "segan":
            with torch.device("meta"):
                n = parameter_count(build(name, dims, cin, ncls, preset=preset).critic)
        ref = f"{reference:,}" if reference else "—"
        delta = f"{100 * (n / reference - 1):+.2f} %" if reference else ""
        lines.append(f"| `{name}` | `{preset}` | {dims}D, {cin} → {ncls} | {n:,} | {ref} | {delta} | {source} | "
                     f"{differs} |")
    lines += [
        "", "Not reproduced as presets, and why:", "",
        "- `drinet`: the paper publishes no width table, so only the default exists.",
        "- `postprocess=crf` defaults (`ctbench.models.crf.dense_crf`): DeepLab v1 fixes the smoothness kernel "
        "at w = 3, θγ = 3 px, cross-validates the appearance kernel on PASCAL RGB images and runs 10 mean-field "
        "iterations; ctbench's defaults are for CT voxels and HU (smoothness w = 1, 1 voxel; appearance w = 3, "
        "8 voxels, 5 % of the intensity range; 5 iterations).",
        "",
        "Deep supervision (`model.deep_supervision=true`, `unet` and `attention_unet`, off by default): in "
        "training the model returns the full-resolution logits and one 1x1 head per decoder level below it "
        "(`attention_unet preset=reference_code`: the authors' own per-scale heads); "
        "the loss is nnU-Net's weighting (`1/2^i`, the lowest level 0, normalised; "
        "`nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py` `_build_loss`) against labels resized "
        "nearest-exact (`ctbench/losses/deep_supervision.py`). In eval mode only the full-resolution tensor "
        "comes out, so validation, test, predict and export do not change.",
        "",
        "U-Net's skips (`model.skip`, `unet` only): `concat` (default) is Ronneberger's concatenation, MONAI "
        "`UNet` unchanged (the weight names and shapes of earlier checkpoints); `add` is FCN's sum (Long et al. "
        "2015) in the same network, to ablate that one ingredient (claim C2c): each skip adds the encoder "
        "feature to the upsampled decoder feature, each decoder layer takes the encoder's width instead of the "
        "concatenated one, and a 1x1 convolution projects the bottom layer's wider output (128 -> 64 channels) "
        "so that the sum is defined (`ctbench.models.unet.AddSkipUNet`). Parameters with the default widths, "
        "5 classes: 402,664 -> 368,728 in 2D, 1,189,930 -> 1,071,610 in 3D (derived in "
        "`tests/models/test_unet_skip.py`); not with `preset=paper`.",
        "",
    ]
    return lines


def replace_presets_section(path: Path) -> None:
    """Rewrite only the presets section of an existing ``docs/models.md`` (appended if missing)."""
    text = path.read_text(encoding="utf-8")
    head = "## Presets: the paper, the authors' code and ctbench"
    section = "\n".join(presets_section())
    if head in text:
        before, rest = text.split(head, 1)
        following = rest.find("\n## ")
        text = before + section.rstrip("\n") + "\n" + (rest[following:] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def build(name: str, dims: int, in_channels: int = 1, num_classes: int = NUM_CLASSES, **overrides):
    model_cfg = OmegaConf.load(MODEL_DIR / f"{name}.yaml")
    for k, v in overrides.items():
        model_cfg[k] = v
    cfg = OmegaConf.create({"dims": dims, "dataset": {"in_channels": in_channels, "num_classes": num_classes},
                            "model": model_cfg})
    return build_model(cfg)


def summary_line(name: str) -> str:
    return (MODEL_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()


def fwd_bwd_seconds(model: torch.nn.Module, shape: tuple[int, ...], repeats: int) -> float:
    model.train()
    x = torch.randn(shape)
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t = time.perf_counter()
        model(x).float().square().mean().backward()
        if i:  # the first pass is a warm-up
            times.append(time.perf_counter() - t)
    return min(times)


def crf_cost(side: int = 128, classes: int = NUM_CLASSES, iterations: int = 5) -> dict[str, float]:
    from ctbench.models.crf import dense_crf

    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(1, classes, side, side, side), 1)
    image = torch.randn(1, 1, side, side, side)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    dense_crf(probs, image, iterations=iterations)
    seconds = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_extra_mb": (rss1 - rss0) / 1024, "side": side, "classes": classes,
            "iterations": iterations}


def train_dice(name: str, dims: int, workdir: Path, epochs: int, divisor: int) -> float | None:
    """Mean foreground test Dice after ``epochs`` epochs of ``ctbench train debug=fast`` (the tiny
    phantom: 10 mm voxels, 16^3 / 32^2 patches, 2 test cases)."""
    run = workdir / f"{name}_{dims}d"
    side = max(16 if dims == 3 else 32, divisor)  # debug=fast patches, grown to the model's multiple
    cmd = [sys.executable, "-m", "ctbench.cli", "train", f"model={name}", f"dims={dims}", "trainer=cpu",
           "debug=fast", f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={epochs}",
           f"dataset.patch_size_{dims}d=[{','.join([str(side)] * dims)}]", "progress_bar=false",
           f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=3600)
    summary = run / "report" / "summary.json"
    if proc.returncode or not summary.exists():
        print(f"  {name} {dims}D training failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(json.loads(summary.read_text())["mean_dice"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "models.md"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dice", action="store_true", help="also train each model on the phantom (slow)")
    ap.add_argument("--dice-epochs", type=int, default=10)
    ap.add_argument("--dice-dims", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--dice-cache", default=None,
                    help="JSON file of Dice results to reuse (and extend), so timings can be redone alone")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--presets-only", action="store_true", help="rewrite only the presets section of --out")
    args = ap.parse_args()
    if args.presets_only:
        replace_presets_section(Path(args.out))
        print(f"updated the presets section of {args.out}")
        return 0
    torch.set_num_threads(args.threads)
    names = args.models or sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))

    load_start = os.getloadavg()[0]
    crf = crf_cost()
    print(f"dense CRF 128^3: {crf['seconds']:.1f} s", flush=True)
    rows = []
    for name in names:
        row = {"name": name, "summary": summary_line(name)}
        for dims, shape in ((2, (1, 1, 256, 256)), (3, (1, 1, 96, 96, 96))):
            torch.manual_seed(0)
            model = build(name, dims)
            row["class"] = f"{type(model).__module__}.{type(model).__name__}"
            row[f"params{dims}"] = parameter_count(model)
            row[f"divisor{dims}"] = model.size_divisor
            row[f"seconds{dims}"] = fwd_bwd_seconds(model, shape, args.repeats)
            del model
        if name in PRESETS:
            preset, cin, ncls, published = PRESETS[name]
            with torch.device("meta"):
                row["preset"] = (preset, parameter_count(build(name, 2, cin, ncls, preset=preset)), published)
        rows.append(row)
        print(f"{name:15s} {row['params2']:>10,d} {row['params3']:>10,d} {row['seconds2']:6.2f}s {row['seconds3']:6.2f}s",
              flush=True)
    args.load = (load_start, os.getloadavg()[0])
    if args.dice:
        cache_path = Path(args.dice_cache) if args.dice_cache else None
        cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
        with tempfile.TemporaryDirectory() as tmp:
            for row in rows:
                for dims in args.dice_dims:
                    key = f"{row['name']}/{dims}d/{args.dice_epochs}ep"
                    if cache.get(key) is None:
                        cache[key] = train_dice(row["name"], dims, Path(tmp), args.dice_epochs,
                                                row[f"divisor{dims}"])
                        if cache_path:
                            cache_path.write_text(json.dumps(cache, indent=1))
                    row[f"dice{dims}"] = cache[key]
                    print(f"{row['name']:15s} {dims}D Dice {row[f'dice{dims}']}", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, crf, args), encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _m(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def render(rows: list[dict], crf: dict, args: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Architectures (survey section 3)",
        "",
        "Generated by `python scripts/model_table.py` — do not edit by hand.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} logical CPUs (torch threads: {args.threads}), torch {torch.__version__}, "
        f"Python {platform.python_version()}; load average while timing {args.load[0]:.1f} → {args.load[1]:.1f} "
        "(the machine is shared: times are upper bounds). Default widths of `configs/model/NAME.yaml`, 1 input channel, "
        f"{NUM_CLASSES} classes (the synthetic phantom). Times: one forward + backward pass, batch 1, float32, "
        f"best of {args.repeats} after a warm-up. `÷` is `size_divisor` (every spatial size must be a multiple; the "
        "data pipeline pads). Paper preset: `model.preset=…`, 2D parameter count with the paper's input "
        "channels/classes (published count in brackets).",
        "",
    ]
    dice_dims = [d for d in (2, 3) if any(f"dice{d}" in r for r in rows)]
    head = "| model | class | params 2D | params 3D | ÷ | fwd+bwd 256² (s) | fwd+bwd 96³ (s) | paper preset (2D) |"
    sep = "|---|---|---:|---:|---:|---:|---:|---|"
    for d in dice_dims:
        head += f" Dice {d}D ({args.dice_epochs} ep) |"
        sep += "---:|"
    lines += [head, sep]
    for r in rows:
        preset = ""
        if "preset" in r:
            name, n, published = r["preset"]
            preset = f"`{name}`: {_m(n)}" + (f" [{published}]" if published else "")
        cells = [f"`{r['name']}`", f"`{r['class']}`", _m(r["params2"]), _m(r["params3"]), str(r["divisor3"]),
                 f"{r['seconds2']:.2f}", f"{r['seconds3']:.2f}", preset]
        cells += [("—" if r.get(f"dice{d}") is None else f"{r[f'dice{d}']:.3f}") for d in dice_dims]
        lines.append("| " + " | ".join(cells) + " |")
    if dice_dims:
        lines += ["", f"Dice: mean foreground test Dice (liver, spleen, kidney, lesion) of `ctbench train model=NAME "
                  f"dims=D debug=fast trainer.max_epochs={args.dice_epochs}` on the tiny synthetic phantom (10 mm "
                  "voxels, 2 test cases; 16³/32² patches, or the model's `size_divisor` if larger): a smoke-level "
                  "comparison under one fixed CPU budget, not a benchmark. 0.125 is a model that still predicts "
                  "only background (the lesion class is empty in one of the two test cases and scores 1 there)."]
    lines += ["", "What each one is (the first line of its config, as `ctbench list models` prints it):", ""]
    lines += [f"- `{r['name']}`: {r['summary']}" for r in rows]
    lines += [
        "",
        "## Dense CRF post-processing (`postprocess=crf`)",
        "",
        f"`ctbench.models.crf.dense_crf` (mean field, Gaussian + bilateral-grid appearance kernel) on one "
        f"{crf['side']}³ volume, {crf['classes']} classes, {crf['iterations']} iterations, default sigmas: "
        f"**{crf['seconds']:.1f} s** on this CPU, about {crf['peak_extra_mb']:.0f} MB of extra peak memory.",
        "",
        *presets_section(),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
