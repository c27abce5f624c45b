"""The Python API runs the CLI's tasks from any folder, without a Hydra runtime in the caller."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, torch
from ctbench import api
s = api.train(['debug=fast', 'progress_bar=false'])
e = api.evaluate([f"ckpt_path={s['run_dir']}/checkpoints/best.ckpt", 'debug=fast', 'progress_bar=false'])
net = api.load_model(f"{s['run_dir']}/checkpoints/best.ckpt")
out = net(torch.zeros(1, 1, 16, 16, 16))
cfg = api.compose(['model=vnet', 'loss=combo'])
print(json.dumps({"train": s['mean_dice'], "eval": e['mean_dice'], "run_dir": s['run_dir'], "eval_dir": e['run_dir'],
                  "training": net.training, "shape": list(out.shape), "type": type(net).__name__,
                  "model": cfg.model._target_, "loss": cfg.loss._target_}))
"""


@pytest.mark.slow
def test_train_evaluate_load_model_from_another_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.0 <= result["train"] <= 1.0 and result["eval"] == pytest.approx(result["train"], abs=1e-9)
    assert result["run_dir"].startswith(str(tmp_path)) and result["eval_dir"].startswith(str(tmp_path))
    assert (tmp_path / result["run_dir"] / "train.log").is_file()
    assert result["training"] is False and result["shape"] == [1, 5, 16, 16, 16] and result["type"] == "UNet"
    assert result["model"] == "ctbench.models.vnet.VNet" and result["loss"] == "ctbench.losses.combo.ComboLoss"
