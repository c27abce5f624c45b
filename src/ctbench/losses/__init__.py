"""Survey section 4 losses, one module per family; ``configs/loss/NAME.yaml`` names the class.

``loss(logits, target)``: logits ``[B, C, *spatial]``, integer labels ``[B, 1, *spatial]``, a scalar
result (see :mod:`ctbench.losses.base`). Nothing is imported here so that loading one module does
not load MONAI's losses for all of them.
"""
