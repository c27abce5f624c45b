"""The LightningModule every architecture x loss pair trains in.

Built from the composed config alone (``model``, ``loss``, ``optim``, ``inference``), so a
checkpoint carries everything needed to rebuild and re-test it. Validation and test run whole-volume
sliding-window inference; per-case results are gathered across processes and de-duplicated by case
id, so distributed sampler padding never counts a case twice.

Checkpoint selection (``val/mean_dice``, :func:`selection_dice`) averages each class over the validation
cases whose truth holds it, so an empty-empty case neither helps nor hurts and predicting nothing never
raises it. With ``trainer.max_time`` the learning-rate schedule runs over the time budget.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from ctbench.engine.components import build_loss, build_model, instantiate
from ctbench.engine.inference import channel_argmax
from ctbench.engine.segmenter import Segmenter
from ctbench.errors import CTBenchError
from ctbench.losses.deep_supervision import deep_supervision_loss

#: training pseudo-Dice (argmax + per-class sums of a batch) at most every this many steps: ~1 % of a
#: step when it ran every 10 (docs/performance.md)
PSEUDO_DICE_EVERY = 50


def dice_per_class(pred: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice of each foreground class for integer label maps (both empty -> 1)."""
    scores = []
    for c in range(1, num_classes):
        p, t = pred == c, truth == c
        denom = p.sum() + t.sum()
        scores.append(torch.where(denom > 0, 2 * (p & t).sum() / denom.clamp(min=1), torch.ones(())))
    return torch.stack(scores).float()


def classes_present(truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Whether the label map holds each foreground class (bool, one per class)."""
    return torch.stack([(truth == c).any() for c in range(1, num_classes)])


def selection_dice(dice: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The checkpoint-selection metric: (per-class Dice, their mean) over validation cases.

    Each class is averaged over the cases whose truth holds it (Metrics Reloaded, Maier-Hein et al. 2024:
    a case where reference and prediction are both empty has no defined Dice), so an empty-empty case
    neither raises nor lowers it; a spurious prediction on a case without the class is not counted either.
    The mean is over the classes some case holds; NaN where none does. Predicting nothing scores 0 on every
    counted case, so it never raises the metric.

    Args:
        dice: ``(cases, classes)`` Dice per case and foreground class.
        present: ``(cases, classes)`` whether the case's truth holds the class.
    """
    present = present.to(dice.dtype)
    counted = present.sum(0)
    per_class = (dice * present).sum(0) / counted.clamp(min=1)
    per_class = torch.where(counted > 0, per_class, torch.full_like(per_class, float("nan")))
    held = counted > 0
    mean = per_class[held].mean() if bool(held.any()) else per_class.new_tensor(float("nan"))
    return per_class, mean


def _gather(items: list[Any]) -> list[Any]:
    """All processes' items, in rank order (the identity without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return items
    out: list[list[Any]] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(out, items)
    return [item for part in out for item in part]


def _finite_on_every_rank(finite: bool, device: torch.device) -> bool:
    """Whether the loss is finite on every process (``finite`` itself without torch.distributed), so that
    under DDP all ranks skip a step together and no rank waits for gradients that never come."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return finite
    flag = torch.tensor([0 if finite else 1], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return not bool(flag.item())


def _unique_by_case(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for item in items:
        seen.setdefault(item["case"], item)
    return [seen[k] for k in sorted(seen)]


class SegmentationModule(pl.LightningModule):
    """Supervised segmentation: ``loss(model(patch), label)``; whole-volume validation and test.

    Args:
        cfg: the composed run config (``model``, ``loss``, ``optim``, ``dataset``, ``inference``, ``dims``).
    """

    def __init__(self, cfg: DictConfig | dict) -> None:
        super().__init__()
        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        self.save_hyperparameters({"cfg": OmegaConf.to_container(cfg, resolve=True)})
        self.cfg = OmegaConf.create(self.hparams["cfg"])
        if self.cfg.get("compile", False) not in (True, False):
            raise CTBenchError(f"compile={self.cfg.compile!r}: give true (torch.compile the network) or false")
        self.model = build_model(self.cfg)
        self.loss_fn = build_loss(self.cfg)
        self.num_classes = int(self.cfg.dataset.num_classes)
        self.class_names = list(self.cfg.dataset.class_names)
        self.segmenter = Segmenter(self.model, self.cfg)
        self._val: list[dict[str, Any]] = []
        #: ``[epoch, val/mean_dice]`` of every validation of the fit (kept in the checkpoints)
        self.val_history: list[list[float]] = []
        #: whether the learning-rate schedule ran to its end (set when training ends)
        self.schedule_completed: bool | None = None
        #: seconds the fit's earlier processes trained up to the checkpoint this one resumed (kept in the checkpoints)
        self.train_seconds_before = 0.0
        self._fit_started: float | None = None
        self._scheduler: Any = None  # the model's schedule, for on_fit_end (Lightning's teardown drops its list)
        self.test_rows: list[dict[str, Any]] = []
        self.overlays: list[dict[str, Any]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def train_seconds(self) -> float:
        """Seconds of training behind the current weights, summed over the processes of a resumed run (what a
        killed process trained after its last checkpoint is left out: the next process trains it again)."""
        now = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self.train_seconds_before + now

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()
        datamodule = getattr(self.trainer, "datamodule", None)
        self.zscore = getattr(datamodule, "zscore", None)
        if self.cfg.get("compile", False):
            # in place (nn.Module.compile): the state_dict keeps its keys, so checkpoints load uncompiled
            self.model.compile()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # normalisation statistics travel with the weights, so `predict` needs no dataset
        checkpoint["ctbench_zscore"] = list(self.zscore) if getattr(self, "zscore", None) else None
        checkpoint["ctbench_val_history"] = [list(item) for item in self.val_history]
        checkpoint["ctbench_train_seconds"] = self.train_seconds()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a resumed run keeps its learning curve (the convergence block of summary.json reads it)
        self.val_history = [[int(e), float(v)] for e, v in checkpoint.get("ctbench_val_history") or []]
        # and its training time (summary.json's train_seconds); a checkpoint from before it was kept holds none
        self.train_seconds_before = float(checkpoint.get("ctbench_train_seconds") or 0.0)

    # ---- training ---------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # scheduled losses (boundary: Kervadec's alpha) follow the epoch; a resumed run continues the schedule
        if hasattr(self.loss_fn, "set_epoch"):
            self.loss_fn.set_epoch(self.current_epoch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        image, label = batch["image"], batch["label"]
        outputs = self.model(image)  # a list with model.deep_supervision=true (full resolution first)
        extra = {"weight_map": batch["weight"]} if "weight" in batch else {}  # unet_weighted: the cached map
        loss = deep_supervision_loss(self.loss_fn, outputs, label, **extra)
        logits = outputs[0] if isinstance(outputs, list | tuple) else outputs
        finite = bool(torch.isfinite(loss))
        everywhere = _finite_on_every_rank(finite, loss.device)  # all processes skip or stop together
        if finite and not everywhere:
            return self._non_finite("the loss of another process became NaN/Inf")
        if not finite:  # NaN/Inf logits reach the loss too: name the first culprit
            if not torch.isfinite(logits).all():
                return self._non_finite("the model's outputs became NaN/Inf")
            return self._non_finite(f"the loss became {loss.item()}")
        # the first step checked the loss inputs (shapes, label range); the data do not change kind after it
        self.loss_fn.input_checks = False
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=image.shape[0])
        if batch_idx % max(PSEUDO_DICE_EVERY, self.trainer.log_every_n_steps) == 0:
            pseudo = dice_per_class(logits.argmax(1, keepdim=True), label.long(), self.num_classes).mean()
            self.log("train/pseudo_dice", pseudo, on_step=True, on_epoch=False, batch_size=image.shape[0])
        return loss

    def _non_finite(self, what: str) -> torch.Tensor | None:
        """``nonfinite=skip``: skip this step's update (``None``; under DDP, where Lightning needs a loss from
        every rank, a zero loss whose gradients :meth:`on_before_optimizer_step` drops); else stop."""
        ckpt = Path(self.trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        last = str(ckpt) if ckpt.exists() else "none yet"
        if self.cfg.get("nonfinite", "stop") == "skip":
            self.print(f"skipping step {self.global_step}: {what}")
            if not (dist.is_available() and dist.is_initialized()):
                return None
            self._skip_update = True
            return sum((p * 0).sum() for p in self.model.parameters())
        raise CTBenchError(f"{what} at step {self.global_step} (epoch {self.current_epoch}); "
                           f"last good checkpoint: {last}. Lower optim.optimizer.lr, use trainer.precision=32, "
                           "or set nonfinite=skip")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if getattr(self, "_skip_update", False):  # a skipped DDP step: parameters without grad are not updated
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
            self._skip_update = False

    # ---- validation -------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        probs = self.segmenter.predictor(self.model, batch["image"])
        pred = channel_argmax(probs, 1).unsqueeze(1)
        label = torch.as_tensor(batch["label"]).as_subclass(torch.Tensor).long()  # MetaTensor -> plain
        for i, case in enumerate(batch["case"]):
            self._val.append({"case": case, "dice": dice_per_class(pred[i], label[i], self.num_classes).cpu(),
                              "present": classes_present(label[i], self.num_classes).cpu()})
        if batch_idx == 0:
            image = torch.as_tensor(batch["image"]).as_subclass(torch.Tensor)
            self._log_overlay(image[0, 0], label[0, 0], pred[0, 0])

    def on_validation_epoch_end(self) -> None:
        items = _unique_by_case(_gather(self._val))
        self._val = []
        if not items:
            return
        dice, mean = selection_dice(torch.stack([i["dice"] for i in items]), torch.stack([i["present"] for i in items]))
        for name, value in zip(self.class_names[1:], dice, strict=True):
            if torch.isfinite(value):  # a class no validation case holds has no Dice
                self.log(f"val/dice_{name}", value, sync_dist=False, rank_zero_only=False)
        self.log("val/mean_dice", mean, prog_bar=True, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.val_history.append([int(self.current_epoch), float(mean)])

    def _log_overlay(self, image: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor) -> None:
        logger = getattr(self.logger, "experiment", None)
        if logger is None or not hasattr(logger, "add_image"):
            return
        z = int(truth.float().sum(dim=(0, 1)).argmax()) if truth.dim() == 3 else 0
        img = image[..., z].float()
        img = (img - img.min()) / (img.max() - img.min() + 1e-6)
        scale = max(1, self.num_classes - 1)
        panel = torch.cat([img, truth[..., z].float() / scale, pred[..., z].float() / scale], dim=1)
        logger.add_image("val/image_truth_prediction", panel.rot90().unsqueeze(0).cpu(), self.global_step)

    # ---- test -------------------------------------------------------------------------------
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        import nibabel as nib

        from ctbench.metrics import case_metrics

        # predict_seconds: the wall time of a case's prediction (sliding window, CRF, back to the file's grid,
        # LCC; every stage of a cascade), not loading (cached) nor the metrics; labels() ends on the CPU, so
        # on a GPU the time includes the device's work. A batch's window time is shared by its cases (test: 1).
        start = time.perf_counter()
        probs = self.segmenter.probs(batch["image"])
        window_seconds = (time.perf_counter() - start) / len(batch["case"])
        image = batch["image"]
        for i, case in enumerate(batch["case"]):
            truth_img = nib.load(batch["source_label"][i])
            truth = np.asarray(truth_img.dataobj).astype(np.int64)
            start = time.perf_counter()
            pred = self.segmenter.labels(probs[i], image.affine[i], truth_img.affine, truth.shape)
            predict_seconds = round(window_seconds + time.perf_counter() - start, 4)
            spacing = [float(s) for s in truth_img.header.get_zooms()[:3]]
            classes = dict(enumerate(self.class_names))
            classes.pop(0)
            rows = case_metrics(pred, truth, spacing, classes, tolerance_mm=self._nsd_tolerance(),
                                lesion_iou=self.lesion_iou)
            self.test_rows.extend({"case": case, **row, "predict_seconds": predict_seconds} for row in rows)
            if len(self.overlays) < int(self.cfg.report.overlays):
                ct = np.asarray(nib.load(batch["source_image"][i]).dataobj, dtype=np.float32)
                self.overlays.append({"case": case, "image": ct, "truth": truth.astype(np.uint8), "pred": pred,
                                      "affine": truth_img.affine})

    @property
    def lesion_iou(self) -> float:
        """``metrics.lesion_iou``: the IoU at which a predicted lesion matches a truth one (0.1 when a stored
        config predates it)."""
        from ctbench.lesion_metrics import DEFAULT_IOU_THRESHOLD

        return float(self.cfg.metrics.get("lesion_iou", DEFAULT_IOU_THRESHOLD))

    def _nsd_tolerance(self) -> float | dict[str, float]:
        """``metrics.nsd_tolerance_mm``: one number, or ``{class: mm, default: mm}``."""
        value = self.cfg.metrics.nsd_tolerance_mm
        return {str(k): float(v) for k, v in value.items()} if isinstance(value, DictConfig) else float(value)

    def predict_timing(self) -> dict[str, Any]:
        """``summary.json``'s ``predict_seconds_mean`` (mean over the test cases of ``predict_seconds``; null
        without test rows) and ``predict_hardware``, what it was measured on (the GPU, or the CPU and its
        torch threads)."""
        from ctbench.provenance import machine_info

        seconds = {row["case"]: row["predict_seconds"] for row in self.test_rows if "predict_seconds" in row}
        if self.device.type == "cuda":
            hardware = f"GPU {torch.cuda.get_device_name(self.device)}"
        else:
            hardware = f"CPU {machine_info()['cpu']}, {torch.get_num_threads()} torch thread(s)"
        mean = round(math.fsum(seconds.values()) / len(seconds), 4) if seconds else None
        return {"predict_seconds_mean": mean, "predict_hardware": hardware}

    def on_test_epoch_end(self) -> None:
        rows = _gather(self.test_rows)
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            seen.setdefault((row["case"], row["class"]), row)
        self.test_rows = [seen[k] for k in sorted(seen)]
        self.overlays = _unique_by_case(_gather(self.overlays))[: int(self.cfg.report.overlays)]

    # ---- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = instantiate(self.cfg.optim.optimizer, "optim.optimizer")(params=self.model.parameters())
        self._scheduler = build_scheduler(self.cfg, optimizer, self.trainer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._scheduler, "interval": "step"}}

    def on_train_end(self) -> None:
        self.schedule_completed = schedule_completed(self._scheduler, self.trainer)

    def on_fit_end(self) -> None:
        # a run resumed from a checkpoint that already holds the whole fit (stopped in its test or report)
        # trains nothing and Lightning skips on_train_end: the restored schedule still says how far it ran
        if self.schedule_completed is None and self._scheduler is not None:
            self.schedule_completed = schedule_completed(self._scheduler, self.trainer)


def _timer(trainer: pl.Trainer) -> Any:
    """Lightning's ``Timer`` callback of ``trainer.max_time`` (None without a time budget)."""
    from lightning.pytorch.callbacks import Timer

    return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, trainer: pl.Trainer) -> Any:
    """``optim.scheduler`` over the run's steps (``trainer.estimated_stepping_batches``), and with
    ``trainer.max_time`` over the time budget too: its progress is the larger of the step and the time
    fraction, so a run that the clock stops ends at the end of its schedule (cosine at its floor), not at
    its peak. A schedule without a time budget (any class but those of ``engine/lr_schedules.py``) is
    refused with ``max_time``."""
    timer = _timer(trainer)
    estimated = trainer.estimated_stepping_batches
    if not math.isfinite(estimated) and timer is None:
        raise CTBenchError("trainer.max_epochs=-1 without trainer.max_steps: the learning-rate schedule needs a "
                           "finite number of steps; set trainer.max_epochs or trainer.max_steps (for a time "
                           "budget: trainer.max_time=DD:HH:MM:SS)", exit_code=2)
    total = max(1, int(estimated)) if math.isfinite(estimated) else 2**62
    scheduler = instantiate(cfg.optim.scheduler, "optim.scheduler")(optimizer, total_steps=total)
    if timer is not None:
        if not hasattr(scheduler, "time_fraction"):
            raise CTBenchError(f"trainer.max_time with optim.scheduler={cfg.optim.scheduler._target_}: that schedule "
                               "cannot run over a time budget and would stop mid-schedule; use a schedule of "
                               "ctbench.engine.lr_schedules (optim=adamw or optim=sgd_poly)", exit_code=2)

        def time_fraction() -> float:
            elapsed, remaining = timer.time_elapsed("train"), timer.time_remaining("train")
            return elapsed / max(elapsed + remaining, 1e-9)

        scheduler.time_fraction = time_fraction
    return scheduler


def schedule_completed(scheduler: Any, trainer: pl.Trainer) -> bool:
    """Whether the learning-rate schedule ran to its end: its progress reached 1 (steps, or the time
    budget spent: with ``trainer.max_time`` the schedule is the budget). A run stopped early (early
    stopping, a kill resumed into a shorter budget) has not."""
    timer = _timer(trainer)
    if timer is not None and timer.time_remaining("train") <= 0:
        return True
    progress = getattr(scheduler, "progress", None)
    if progress is None:  # a torch schedule: the steps taken of those it was built for
        total = getattr(scheduler, "total_steps", None) or trainer.estimated_stepping_batches
        progress = trainer.global_step / total if total else 1.0
    return progress >= 1.0
