"""``ctbench train model=X dims=3 debug=fast`` for the stride-32 models (FCN-32s/16s/8s, SegNet), which
failed before ``debug=fast`` gave them 32^3 patches ("patch size [16, 16, 16] is not a multiple of 32").
One real multirun through the installed command (four trainings: 107 s under load average 10 on this
2-core CPU, so marked slow); ``scripts/fast_check_all.py`` runs all 32 pairs."""

from __future__ import annotations

import json

import pytest

from cli_helpers import TINY, ctbench

STRIDE_32 = ("fcn32s", "fcn16s", "fcn8s", "segnet")


@pytest.mark.slow
def test_debug_fast_trains_the_stride_32_models_in_3d(tmp_path):
    sweep = tmp_path / "multirun"
    ctbench("train", "-m", f"model={','.join(STRIDE_32)}", "dims=3", *TINY, "trainer.max_epochs=1",
            f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    for name in STRIDE_32:
        run = sweep / f"{name}-dice_ce-3d-seed42-fold0"
        summary = json.loads((run / "report" / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["model"] == name and summary["dims"] == 3
        config = (run / "resolved_config.yaml").read_text()
        assert "patch_size_3d:\n  - 32\n  - 32\n  - 32" in config, name
