"""The closed allowlist: the exact classes a config ctbench did not compose itself may name.

A checkpoint's stored run config is data from someone else. It may name only the fully-qualified
classes below, each under the block that builds it (a loss class is refused as ``model._target_``);
no module prefix is trusted, because a library package also holds classes that load code when built
(``monai.losses.PerceptualLoss`` calls ``torch.hub.load(trust_repo=True)`` on a folder the file
chooses). The list is exactly what ``configs/`` uses (``tests/test_allowlist.py`` walks every YAML
there, both ways); a new model, loss, optimiser or scheduler config adds its class here. A user who
needs another class names it on the command line, ``trust.allow=[pkg.Class]``, never in a file.

Nothing here imports the classes: the check compares strings before anything is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: block of a run config -> the classes its ``_target_`` (and ``model.lightning_module``) may name
ALLOWED: Mapping[str, frozenset[str]] = {
    "model": frozenset({
        "ctbench.models.attention_unet.AttentionUNet",
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
        "ctbench.losses.combo.ComboLoss",
        "ctbench.losses.combo.DiceCELoss",
        "ctbench.losses.conservative.ConservativeLoss",
        "ctbench.losses.cross_entropy.BalancedCrossEntropyLoss",
        "ctbench.losses.cross_entropy.CrossEntropyLoss",
        "ctbench.losses.cross_entropy.WeightedCrossEntropyLoss",
        "ctbench.losses.dice.DiceLoss",
        "ctbench.losses.dice.GeneralizedDiceLoss",
        "ctbench.losses.dice.IoULoss",
        "ctbench.losses.exp_log.ExpLogLoss",
        "ctbench.losses.focal.FocalLoss",
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

#: block of a stored run config (a checkpoint's) -> the roles whose classes a ``_target_`` in it may name;
#: a target anywhere else in a stored config is refused
STORED_BLOCK_ROLES: Mapping[str, tuple[str, ...]] = {
    "model": ("model",),
    "loss": ("loss",),
    "optim": ("optimizer", "scheduler"),
    "dataset": ("reader",),
}


def allowed_classes(roles: Iterable[str] | None = None) -> frozenset[str]:
    """The classes of ``roles`` (all of them when None)."""
    chosen = ALLOWED if roles is None else {r: ALLOWED[r] for r in roles}
    return frozenset().union(*chosen.values())


def is_allowed(target: str, block: str, extra: Iterable[str] = ()) -> bool:
    """``target`` is an exact listed class for ``block`` of a stored run config (``model.lightning_module``
    passes ``block="lightning_module"``), or one the user named with ``trust.allow`` on the command line."""
    roles = ("lightning_module",) if block == "lightning_module" else STORED_BLOCK_ROLES.get(block, ())
    return target in allowed_classes(roles) or target in set(extra)
