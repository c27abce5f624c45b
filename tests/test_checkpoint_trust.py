"""A checkpoint from someone else is data, never code (issue: trust every file, row 1), and it predicts
on any machine without the training machine's files (row 9).

Each payload is written into the run config stored in a real checkpoint of the tiny run; ``predict``
and ``eval`` must refuse it with one line and exit non-zero, before anything in it is called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from ctbench.engine.allowlist import check_untrusted
from ctbench.errors import CTBenchError

from cli_helpers import ctbench


class _RunsShell:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _payloads(marker: Path, victim: Path) -> dict[str, callable]:
    pickled = pickle.dumps(_RunsShell(str(marker)))

    def system(cfg):
        cfg["model"] = {"_target_": "os.system", "command": f"touch {marker}"}

    def exec_(cfg):
        cfg["loss"] = {"_target_": "builtins.exec", "_args_": [f"open('{marker}', 'w')"]}

    def eval_(cfg):
        cfg["model"]["_target_"] = "builtins.eval"
        cfg["model"]["_args_"] = [f"__import__('os').system('touch {marker}')"]

    def torch_load(cfg):
        cfg["model"] = {"_target_": "torch.load", "weights_only": False,
                        "f": {"_target_": "io.BytesIO", "initial_bytes": list(pickled)}}

    def open_truncate(cfg):
        cfg["trainer"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
        cfg["model"]["channels"] = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}

    def nested(cfg):  # inside an argument of an allowed class
        cfg["model"]["strides"] = [{"_target_": "os.system", "command": f"touch {marker}"}, 2, 2]

    def module_path(cfg):  # an allowed package prefix reaching a function through a module attribute
        cfg["model"]["lightning_module"] = "ctbench.atomic.os.system"

    def interpolation(cfg):
        cfg["model"]["channels"] = "${oc.decode:'{_target_: os.system, command: touch x}'}"

    return {"os.system": system, "builtins.exec": exec_, "builtins.eval": eval_, "torch.load(BytesIO)": torch_load,
            "builtins.open(w)": open_truncate, "nested in UNet": nested, "ctbench.atomic.os.system": module_path,
            "interpolation": interpolation}


def _forge(trained_run: Path, out: Path, mutate) -> Path:
    ckpt = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    mutate(ckpt["hyper_parameters"]["cfg"])
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    out.write_bytes(buffer.getvalue())
    return out


def test_untrusted_config_check_allows_the_allowlist_and_refuses_the_rest():
    check_untrusted({"model": {"_target_": "ctbench.models.unet.UNet"}, "loss": {"_target_": "ctbench.losses.dice.DiceLoss"},
                     "optim": {"optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True}}}, "test")
    for target in ("os.system", "builtins.open", "torch.load", "subprocess.run", "ctbench.atomic.os.system",
                   "torch.nn.functional.conv2d", "monai.apps.download_url", "numpy.load", "monai.losses.DiceLoss",
                   "monai.losses.PerceptualLoss", "lightning.pytorch.Trainer"):
        for key in ("model", "loss", "x"):
            with pytest.raises(CTBenchError, match="refusing test"):
                check_untrusted({key: {"_target_": target}}, "test")


def _predict_in_process(args: list[str], capsys) -> tuple[int, list[str]]:
    """``ctbench predict ARGS`` through the real entry point, in this process (no interpreter start-up)."""
    from ctbench.cli import main

    try:
        code = main(["predict", *args])
    except SystemExit as exc:
        code = exc.code
    return int(code or 0), capsys.readouterr().err.strip().splitlines()


@pytest.mark.slow
def test_no_payload_runs_through_predict_or_eval(trained_run, workdir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker, victim = tmp_path / "pwned", tmp_path / "victim.txt"
    victim.write_text("precious")
    image = sorted((workdir / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))[0]
    seen = []
    for i, (name, mutate) in enumerate(_payloads(marker, victim).items()):
        ckpt = _forge(trained_run, tmp_path / f"payload{i}.ckpt", mutate)
        code, lines = _predict_in_process([f"ckpt_path={ckpt}", f"input={image}", f"output_dir={tmp_path / 'pred'}",
                                           "progress_bar=false"], capsys)
        assert code == 2, (name, lines)
        assert len(lines) == 1 and lines[0].startswith("ctbench: error: refusing checkpoint"), (name, lines)
        seen.append(name)
        if name in ("torch.load(BytesIO)", "builtins.open(w)"):  # and through the real `ctbench eval` command
            proc = ctbench("eval", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}", "progress_bar=false",
                           cwd=workdir, check=False)
            assert proc.returncode == 2 and proc.stderr.strip().startswith("ctbench: error: refusing checkpoint")
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not marker.exists(), name
        assert victim.read_text() == "precious", name
    assert not (tmp_path / "pred").exists()  # refused before any output was written
    assert len(seen) == 8


def test_checkpoint_predicts_without_the_training_machines_pretrained_file(trained_run, workdir, tmp_path):
    gone = "/training-machine/home/alice/weights/pretrained_unet.pt"

    def mutate(cfg):
        cfg["model"]["pretrained"] = gone

    ckpt = _forge(trained_run, tmp_path / "from_pretrained.ckpt", mutate)
    image = sorted((workdir / "data" / "synthetic_tiny" / "imagesTr").glob("*.nii.gz"))[0]
    proc = ctbench("predict", f"ckpt_path={ckpt}", f"input={image}", f"output_dir={tmp_path / 'out'}",
                   "model.pretrained=null", "progress_bar=false", cwd=workdir)
    assert gone not in proc.stdout + proc.stderr
    assert len(list((tmp_path / "out").glob("*.nii.gz"))) == 1
