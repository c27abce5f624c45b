"""What makes a run the same run: config fingerprints, resume checks and the checkpoint to continue from.

``resume=true`` continues a run only with the config it started with (:func:`config_differences`,
apart from :data:`MAY_CHANGE`); a tested checkpoint must carry the run's own fingerprint
(:func:`fingerprint`), so a report never describes another run's weights; the newest of ``last.ckpt`` and
Lightning's SLURM ``hpc_ckpt_N.ckpt`` (SIGUSR1) is the one resumed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ctbench.safe_yaml import load_config

#: keys (or key prefixes) that may change between a run and its resumption: hardware, length, output, test-time
#: post-processing
MAY_CHANGE = ("trainer.max_epochs", "trainer.devices", "trainer.accelerator", "trainer.num_nodes",
              "trainer.strategy", "trainer.enable_progress_bar", "resume", "overwrite", "progress_bar",
              "ckpt_path", "paths.", "dataset.num_workers", "logger", "callbacks",
              "dataset.single_component_classes")  # read only by postprocess=lcc, which eval and predict may set
#: keys added to a config group after runs were made -> the value those runs had without the key: a run config
#: holding that value is the same run as one without the key (fingerprint, resume)
ADDED_KEYS = {"model.skip": "concat",   # U-Net's skip option (issue 23): older U-Net runs concatenate
              "compile": False, "dataset.volumes_per_epoch": None}  # the GPU check's options: older runs had neither


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def _plain(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def _kept(key: str, value: Any) -> bool:
    return not any(key == k or key.startswith(k if k.endswith(".") else f"{k}.") for k in MAY_CHANGE) and not (
        key in ADDED_KEYS and value == ADDED_KEYS[key])


#: a study preset's bookkeeping (``study.*``: epochs per network, C10's source folder): it acts on a run only
#: through the keys it fills in (``trainer.max_epochs``...), which are compared themselves; so another
#: network's epochs changing in the preset neither stops a run's resumption, nor makes its complete run stale,
#: nor makes its checkpoint another run's (:func:`fingerprint`)
STUDY_BOOKKEEPING = "study."


def fingerprint(cfg: DictConfig | Mapping[str, Any]) -> str:
    """SHA-1 (12 hex digits) of the run config without the keys that may change on resume and without a study
    preset's bookkeeping (:data:`STUDY_BOOKKEEPING`)."""
    flat = {k: v for k, v in _flat(_plain(cfg)).items() if _kept(k, v) and not k.startswith(STUDY_BOOKKEEPING)}
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:12]


#: keys a *finished* run's config (and a study run's on resume) must also match to stand for the run asked for:
#: its length is part of its result (a 60-epoch run is not the 100-epoch run a changed preset asks for)
FINISHED_ALSO = ("trainer.max_epochs",)


def config_differences(stored: DictConfig | Mapping[str, Any], current: DictConfig | Mapping[str, Any],
                       finished: bool = False) -> list[str]:
    """``key: old -> new`` for every key that differs and may not change on resume; ``finished``: between a
    complete run and the run asked for. :data:`FINISHED_ALSO` counts for a finished run and for any run of a
    study preset (its length is the preset's, not the user's to extend); :data:`STUDY_BOOKKEEPING` never does."""
    old_flat, new_flat = (_flat(_plain(c)) for c in (stored, current))
    length_counts = finished or any(k.startswith(STUDY_BOOKKEEPING) for k in old_flat)

    def compared(key: str, value: Any) -> bool:
        if key.startswith(STUDY_BOOKKEEPING):
            return False
        return (length_counts and key in FINISHED_ALSO) or _kept(key, value)

    old, new = ({k: v for k, v in flat.items() if compared(k, v)} for flat in (old_flat, new_flat))
    keys = sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))
    return [f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in keys]


def resumable_checkpoint(run_dir: Path) -> Path | None:
    """The newest of ``checkpoints/last.ckpt`` and Lightning's ``hpc_ckpt_N.ckpt`` (SLURM's SIGUSR1)."""
    found = [p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _light_load(path: Path) -> dict | None:
    """A checkpoint read with ``weights_only`` and memory-mapped (cheap), or None when unreadable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file is reported as such
        return None
    return ckpt if isinstance(ckpt, dict) else None


def checkpoint_position(path: Path) -> str:
    """``epoch E, step S`` of a checkpoint, or why not."""
    ckpt = _light_load(path)
    return "an unreadable file" if ckpt is None else f"epoch {ckpt.get('epoch')}, step {ckpt.get('global_step')}"


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint holds (None when unreadable)."""
    epoch = (_light_load(path) or {}).get("epoch")
    return int(epoch) if isinstance(epoch, int) else None


def find_run_of_config(cfg: DictConfig, search_dir: Path, exclude: Path) -> Path | None:
    """The newest run folder below ``search_dir`` whose ``resolved_config.yaml`` has ``cfg``'s fingerprint and
    that holds a checkpoint to resume."""
    wanted = fingerprint(cfg)
    candidates = []
    for resolved in search_dir.glob("*/resolved_config.yaml"):
        run = resolved.parent
        if run.resolve() == exclude.resolve() or resumable_checkpoint(run) is None:
            continue
        try:
            stored = load_config(resolved)
        except Exception:  # noqa: BLE001 - a damaged folder is simply not a candidate
            continue
        if fingerprint(stored) == wanted:
            candidates.append(run)
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
