"""The command table of ``ctbench``: every command's name, arguments and implementation.

Both :mod:`ctbench.cli` (parsing, dispatch) and :mod:`ctbench.completion` (shell completion) read it;
it imports nothing of the package, so neither has to import the other for it.
"""

from __future__ import annotations

import argparse

#: Commands composed by Hydra: ``ctbench NAME [overrides]`` -> ``configs/NAME.yaml``.
HYDRA_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("ctbench.engine.run:train", "compose a config, fit, test the best checkpoint, write the run report"),
    "eval": ("ctbench.engine.run:evaluate", "test a checkpoint (ckpt_path=...) on a dataset split, write the run report"),
    "predict": ("ctbench.engine.run:predict", "predict NIfTI/DICOM input (input=..., output_dir=...) in the input's geometry"),
    "export": ("ctbench.engine.export:export", "a checkpoint as ONNX or TorchScript (format=..., output=...) + its preprocessing JSON"),
    "bench": ("ctbench.engine.throughput:bench", "throughput benchmark of the composed config, writes benchmark.json"),
}


def add_argparse_commands(sub: argparse._SubParsersAction) -> dict[str, str]:
    """Declare the argparse commands; returns name -> "module:function" taking the parsed args."""
    p = sub.add_parser("synth", help="write the synthetic CT phantom dataset in MSD layout")
    p.add_argument("out_dir", help="folder to write (dataset.json, imagesTr/, labelsTr/)")
    p.add_argument("--cases", type=int, default=24, help="number of cases (default 24)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--voxel-mm", type=float, nargs=2, default=(2.0, 3.5), metavar=("LO", "HI"),
                   help="range of the random voxel size per axis in mm (default 2.0 3.5)")
    p.add_argument("--kind", choices=("synthetic", "phantom"), default="synthetic",
                   help="synthetic (simple, --voxel-mm) or phantom (CT-realistic, docs/phantom.md)")

    p = sub.add_parser("list", help="the names a config may use, with one line each")
    p.add_argument("group", nargs="?", default=None,
                   help="models, losses, datasets, optims, trainers or experiments (default: all)")

    p = sub.add_parser("convert", help="convert a DICOM tree to one NIfTI (HU) + JSON sidecar per CT series")
    p.add_argument("dicom_dir", help="folder to walk (any layout, any file names)")
    p.add_argument("out_dir", help="folder for SERIES.nii.gz and SERIES.json")
    p.add_argument("--force", action="store_true", help="write series with uneven spacing or missing slices anyway")
    p.add_argument("--keep-uids", action="store_true", help="add Study/Series/FrameOfReference UIDs to the sidecar")

    p = sub.add_parser("score", help="score NIfTI label maps against ground truth: per_case.csv + summary.json")
    p.add_argument("pred_dir", help="folder of predicted label maps (*.nii / *.nii.gz)")
    p.add_argument("truth_dir", help="folder of ground-truth label maps, matched by file name")
    p.add_argument("--out", default="score", help="output folder (default ./score)")
    p.add_argument("--labels", nargs="+", default=None, metavar="ID=NAME",
                   help="classes to score, e.g. 1=liver 2=spleen (default: every label present in truth)")
    p.add_argument("--tolerance", type=float, default=1.0, help="surface-Dice tolerance in mm (default 1)")

    p = sub.add_parser("report", help="aggregate run reports into model x loss tables and heatmaps")
    p.add_argument("dirs", nargs="+", help="run or multirun folders (searched for report/summary.json)")
    p.add_argument("--out", default=None, help="output folder (default: the first folder given)")
    p.add_argument("--baseline", default=None, metavar="MODEL:LOSS",
                   help="pair to test every cell against (sign-flip permutation test over cases)")
    p.add_argument("--metric", default="dice", help="metric for the main table (default dice)")
    p.add_argument("--claims", default=None, metavar="FILE_DIR_OR_NAME",
                   help="claim YAML(s): claims.md/.csv verdicts; 'survey' names the packaged survey claims")

    p = sub.add_parser("loss-curves", help="the survey's Figure 9: every loss against IoU, large and small object")
    p.add_argument("out_dir", help="folder for loss_curves.png and loss_curves.csv")

    p = sub.add_parser("completion", help="print the shell completion script: eval \"$(ctbench completion bash)\"")
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")

    p = sub.add_parser("check-data", help="integrity check of a dataset (shapes, geometry, labels, NaNs)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides selecting the dataset, e.g. dataset=msd dataset.root=...")

    p = sub.add_parser("study", help="the survey-reproduction study: run its claim experiments, judge every claim",
                       description="ctbench study run|report: every claim experiment of configs/experiment/claims, "
                                   "one verdict per claim file of configs/claims (docs/survey-reproduction.md)")
    p.add_argument("action", choices=("run", "report"),
                   help="run: every job of the claims (a rerun finishes an interrupted study), then the report; "
                        "report: verdicts of the complete runs only")
    p.add_argument("preset", nargs="?", default="study=cpu", metavar="study=cpu|full",
                   help="configs/study preset (default study=cpu; study=full: the full-size runs, a GPU node)")
    p.add_argument("--only", nargs="+", metavar="CLAIM",
                   help="claims to run and show, e.g. C7 C8 (default all); the family of the verdicts stays every "
                        "claim file")
    p.add_argument("--jobs", type=int, default=2, help="jobs side by side, one thread each (default 2)")
    p.add_argument("--srun", action="store_true", help="start each job with srun (inside a SLURM allocation)")
    p.add_argument("--deadline", metavar="TIME",
                   help="start no job expected to end after TIME: a duration (90m, 2h30m) or a clock time (18:45); "
                        "each job's time is estimated from its network's finished jobs (a network not run yet: the "
                        "slowest one's); rerun to go on")
    p.add_argument("--doc", default=None, help="markdown file whose study section is rewritten "
                                               "(default multirun/claims/report/survey-reproduction.md)")
    p.add_argument("--dry-run", action="store_true", help="print the jobs and their commands, run nothing")

    return {
        "study": "ctbench.study:run_cli",
        "synth": "ctbench.data.synth:run_cli",
        "list": "ctbench.catalog:run_cli",
        "convert": "ctbench.data.dicom:run_cli",
        "score": "ctbench.reports.score:run_cli",
        "report": "ctbench.reports.comparison:run_cli",
        "loss-curves": "ctbench.reports.loss_curves:run_cli",
        "check-data": "ctbench.data.integrity:run_cli",
        "completion": "ctbench.completion:run_cli",
    }


def argparse_command_names() -> list[str]:
    """The commands parsed by argparse (for shell completion), ``completion`` itself left out."""
    return [name for name in add_argparse_commands(argparse.ArgumentParser().add_subparsers()) if name != "completion"]



def command_names() -> list[str]:
    """Every command of ``ctbench``, Hydra ones first, as the first word of a command line."""
    return [*HYDRA_COMMANDS, *argparse_command_names(), "completion"]
