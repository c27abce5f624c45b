"""Is a seed's outcome in its initial weights or in its training stream? Trains a run's config for a few epochs
with the initial weights of one seed and the data stream (patches, crops, flips, order, dropout) of another, on
the run's own learning-rate schedule (its ``max_epochs``), and prints the validation Dice per class at the end.

The stream is the real run's: the module is built after ``seed_everything(data seed)``, as ``ctbench train``
does, so the global generators the data draws from are where they would be; only its weights are then replaced
by those a ``seed_everything(init seed)`` build gives. With init seed = data seed this is meant to be the run
itself: the 6 Dec batch-Dice runs are replayed exactly, the 4 Dec per-patch Dice runs are not: they were made
on an Intel Xeon (``predict_hardware`` in their ``summary.json``) and this machine is an AMD EPYC, whose float
kernels differ (``scripts/first_validation_replay.py``). Compare pairs within one call, not with a committed run.
Asked of seed 2's spleen, lost in the first epochs by the region losses with the background out
(``docs/survey-reproduction.md``):

    PYTHONPATH=src .venv/bin/python scripts/init_vs_data_seed.py \
        multirun/claims_dice_batch/unet-dice-batch-2d-seed2-lr0.003/resolved_config.yaml --pairs 2,2 0,2 2,0 0,0
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import torch
from omegaconf import OmegaConf

from ctbench.engine.build import build_datamodule, build_module, build_trainer


class StopAfter(pl.Callback):
    """Ends ``fit`` after ``epochs`` epochs (and their validation), on the run's whole schedule."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def run(config: str, init_seed: int, data_seed: int, epochs: int, out: Path) -> dict[str, float]:
    cfg = OmegaConf.load(config)
    cfg.seed = data_seed
    # max_epochs and the validation cadence stay the run's (its learning-rate schedule, its stream)
    cfg.progress_bar = False
    pl.seed_everything(init_seed, workers=True, verbose=False)
    weights = build_module(cfg).state_dict()
    pl.seed_everything(data_seed, workers=True, verbose=False)
    module = build_module(cfg)
    module.load_state_dict(weights)
    data = build_datamodule(cfg, int(getattr(module.model, "size_divisor", 1)), module.loss_fn)
    trainer = build_trainer(cfg, out)
    trainer.callbacks.append(StopAfter(epochs))
    trainer.fit(module, datamodule=data)
    return {k.removeprefix("val/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a run's resolved_config.yaml")
    parser.add_argument("--pairs", nargs="+", default=["2,2", "0,2", "2,0", "0,0"], help="INIT,DATA seeds")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for pair in args.pairs:
        init_seed, data_seed = (int(s) for s in pair.split(","))
        with tempfile.TemporaryDirectory() as tmp:
            scores = run(args.config, init_seed, data_seed, args.epochs, Path(tmp))
        cells = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items()))
        print(f"init seed {init_seed}, data seed {data_seed}, {args.epochs} epochs: {cells}", flush=True)


if __name__ == "__main__":
    main()
