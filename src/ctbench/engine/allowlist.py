"""The closed allowlist: the exact classes a config ctbench did not compose itself may name.

A checkpoint's stored run config is data from someone else. It may name only the fully-qualified
classes below, each under the block that builds it (a loss class is refused as ``model._target_``);
no module prefix is trusted, because a library package also holds classes that load code when built
(``monai.losses.PerceptualLoss`` calls ``torch.hub.load(trust_repo=True)`` on a folder the file
chooses). The list is exactly what ``configs/`` uses (``tests/test_allowlist.py`` walks every YAML
there, both ways); a new model, loss, optimiser or scheduler config adds its class here. A user who
needs another class names it on the command line, ``trust.allow=[pkg.Class]``, never in a file.

:func:`check_untrusted` walks a stored config before anything in it is imported or called: it refuses a
class off the list, a class at a key that builds nothing, Hydra's call options (``_args_``, ``_recursive_``,
``_convert_``) and interpolations (``${...}``, whose resolution could build new targets). It compares strings only:
nothing is imported to decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ctbench.errors import CTBenchError, printable

#: block of a run config -> the classes its ``_target_`` (and ``model.lightning_module``) may name
ALLOWED: Mapping[str, frozenset[str]] = {
    "model": frozenset({
        "ctbench.models.attention_unet.AttentionUNet",
        "ctbench.models.dynunet.DynUNet",
        "ctbench.models.mednext.MedNeXt",
        "ctbench.models.resenc_unet.ResEncUNet",
        "ctbench.models.segresnet.SegResNet",
        "ctbench.models.transformer_unets.SwinUNETR",
        "ctbench.models.transformer_unets.UNETR",
        "ctbench.models.cascaded_fcn.CascadedFCN",
        "ctbench.models.deeplab.DeepLabV1",
        "ctbench.models.deeplab.DeepLabV2",
        "ctbench.models.deeplab.DeepLabV3",
        "ctbench.models.deeplab.DeepLabV3Plus",
        "ctbench.models.drinet.DRINet",
        "ctbench.models.fcdensenet.FCDenseNet",
        "ctbench.models.fcn.FCN16s",
        "ctbench.models.fcn.FCN32s",
        "ctbench.models.fcn.FCN8s",
        "ctbench.models.pspnet.PSPNet",
        "ctbench.models.segan.SegAN",
        "ctbench.models.segnet.SegNet",
        "ctbench.models.unet.UNet",
        "ctbench.models.vnet.VNet",
    }),
    "lightning_module": frozenset({
        "ctbench.engine.adversarial.AdversarialSegmentationModule",
        "ctbench.engine.cascade.CascadeSegmentationModule",
    }),
    "loss": frozenset({
        "ctbench.losses.boundary.BoundaryLoss",
        "ctbench.losses.combo.ComboLoss",
        "ctbench.losses.combo.DiceCELoss",
        "ctbench.losses.combo.DiceFocalLoss",
        "ctbench.losses.combo.DiceTopKLoss",
        "ctbench.losses.conservative.ConservativeLoss",
        "ctbench.losses.cross_entropy.BalancedCrossEntropyLoss",
        "ctbench.losses.cross_entropy.CrossEntropyLoss",
        "ctbench.losses.cross_entropy.WeightedCrossEntropyLoss",
        "ctbench.losses.dice.DiceLoss",
        "ctbench.losses.dice.GeneralizedDiceLoss",
        "ctbench.losses.dice.IoULoss",
        "ctbench.losses.exp_log.ExpLogLoss",
        "ctbench.losses.focal.FocalLoss",
        "ctbench.losses.hausdorff.HausdorffDTLoss",
        "ctbench.losses.topk.TopKLoss",
        "ctbench.losses.tversky.FocalTverskyLoss",
        "ctbench.losses.tversky.TverskyLoss",
        "ctbench.losses.unet_weighted.UNetWeightedCrossEntropyLoss",
    }),
    "optimizer": frozenset({
        "torch.optim.AdamW",
        "torch.optim.SGD",
    }),
    "scheduler": frozenset({
        "ctbench.engine.lr_schedules.PolyLR",
        "ctbench.engine.lr_schedules.WarmupCosineLR",
    }),
    "reader": frozenset({
        "ctbench.data.readers.case_folders.CaseFoldersReader",
        "ctbench.data.readers.dicom.DicomReader",
        "ctbench.data.readers.msd.MSDReader",
        "ctbench.data.readers.msd.PhantomReader",
        "ctbench.data.readers.msd.SyntheticReader",
        "ctbench.data.readers.nifti.NiftiGlobReader",
        "ctbench.data.readers.totalsegmentator.TotalSegmentatorReader",
    }),
    # the blocks below belong to this machine and command: a checkpoint never supplies them (they are
    # listed because configs/ uses them, so that the list stays the complete set of configured classes)
    "trainer": frozenset({"lightning.pytorch.Trainer"}),
    "logger": frozenset({
        "lightning.pytorch.loggers.CSVLogger",
        "lightning.pytorch.loggers.MLFlowLogger",
        "lightning.pytorch.loggers.TensorBoardLogger",
        "lightning.pytorch.loggers.WandbLogger",
    }),
    "callback": frozenset({
        "lightning.pytorch.callbacks.EarlyStopping",
        "lightning.pytorch.callbacks.LearningRateMonitor",
    }),
    "hydra": frozenset({
        "ctbench.sweep_status.SweepStatus",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    }),
}

#: where a stored run config (a checkpoint's) may hold a class name -> the role it builds; a ``_target_``
#: anywhere else in a stored config is refused
STORED_TARGETS: Mapping[str, str] = {
    "model._target_": "model",
    "model.lightning_module": "lightning_module",
    "loss._target_": "loss",
    "optim.optimizer._target_": "optimizer",
    "optim.scheduler._target_": "scheduler",
}


def allowed_classes(roles: Iterable[str] | None = None) -> frozenset[str]:
    """The classes of ``roles`` (all of them when None)."""
    chosen = ALLOWED if roles is None else {r: ALLOWED[r] for r in roles}
    return frozenset().union(*chosen.values())


def is_allowed(target: str, key: str, extra: Iterable[str] = ()) -> bool:
    """``target`` may stand at ``key`` (``model._target_``, ...) of a stored run config: an exact listed class
    of that role, or a class the user named with ``trust.allow`` on the command line."""
    role = STORED_TARGETS.get(key)
    return role is not None and (target in ALLOWED[role] or target in set(extra))


#: Hydra's call options a stored config never holds (ctbench's configs use only ``_partial_: true``, on the
#: optimiser and scheduler, which builds nothing by itself)
HYDRA_CALL_KEYS = ("_args_", "_recursive_", "_convert_")


def check_untrusted(node: Any, source: str, allow: Iterable[str] = ()) -> None:
    """Refuse (one line, exit 2) a config from ``source`` that names a class off the allowlist (or one the user
    added with ``trust.allow``), a class at a key that builds nothing, a Hydra call option, or an interpolation.
    Walks without recursion (a crafted file may nest deeply)."""
    from omegaconf import DictConfig, ListConfig

    allow = tuple(allow)
    stack: list[tuple[Any, str]] = [(node, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, Mapping | DictConfig):
            for key, value in item.items():
                where = f"{path}.{key}" if path else str(key)
                if key in ("_target_", "lightning_module"):
                    if not isinstance(value, str) or not is_allowed(value, where, allow):
                        raise CTBenchError(f"refusing {source}: '{printable(where)}' names {str(value)[:80]!r}, which is not on "
                                           "ctbench's allowlist for that key (ctbench/engine/allowlist.py): load only "
                                           "checkpoints written by ctbench, or allow a class you trust on the command "
                                           "line with trust.allow=[pkg.Class]", exit_code=2)
                if key in HYDRA_CALL_KEYS or (key == "_partial_" and value is not True):
                    raise CTBenchError(f"refusing {source}: '{printable(where)}' is a Hydra call option, which a stored run "
                                       "config never holds: load only checkpoints written by ctbench", exit_code=2)
                stack.append((value, where))
        elif isinstance(item, list | tuple | ListConfig):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(item))
        elif isinstance(item, str) and "${" in item:
            raise CTBenchError(f"refusing {source}: '{printable(path)}' holds an interpolation ({item[:60]!r}); a stored run "
                               "config is always resolved: load only checkpoints written by ctbench", exit_code=2)
