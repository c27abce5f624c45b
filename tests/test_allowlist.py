"""The closed allowlist (issue 20, finding 1) is exactly the classes ``configs/`` names, in both directions."""

from __future__ import annotations

import yaml

from ctbench.config import CONFIG_DIR
from ctbench.engine.allowlist import ALLOWED, allowed_classes, is_allowed


def _configured_targets() -> dict[str, set[str]]:
    """Every ``_target_`` / ``lightning_module`` string in configs/, with the files naming it."""
    found: dict[str, set[str]] = {}

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("_target_", "lightning_module") and isinstance(value, str):
                    found.setdefault(value, set()).add(where)
                else:
                    walk(value, where)
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text()), path.relative_to(CONFIG_DIR).as_posix())
    return found


def test_every_configured_class_is_listed_and_nothing_listed_is_unused():
    configured = _configured_targets()
    listed = allowed_classes()
    assert sorted(set(configured) - listed) == [], "configs name classes missing from engine/allowlist.py"
    assert sorted(listed - set(configured)) == [], "engine/allowlist.py lists classes no config uses"


def test_each_group_lists_its_classes_under_its_own_block():
    configured = _configured_targets()
    for target, files in configured.items():
        for where in files:
            group = where.split("/")[0]
            if group in ("model", "loss"):
                role = "lightning_module" if target in ALLOWED["lightning_module"] else group
                assert target in ALLOWED[role], (target, where)


def test_a_class_is_allowed_only_in_its_own_block_and_no_prefix_is_trusted():
    assert is_allowed("ctbench.models.unet.UNet", "model._target_")
    assert not is_allowed("ctbench.models.unet.UNet", "loss._target_")
    assert not is_allowed("ctbench.models.unet.UNet", "model.channels._target_")  # only where a block is built
    assert not is_allowed("ctbench.losses.dice.DiceLoss", "model._target_")
    assert not is_allowed("monai.losses.PerceptualLoss", "loss._target_")
    assert not is_allowed("monai.networks.nets.UNet", "model._target_")
    assert not is_allowed("lightning.pytorch.Trainer", "trainer._target_")  # never from a stored config
    assert is_allowed("monai.networks.nets.UNet", "model._target_", extra=["monai.networks.nets.UNet"])
