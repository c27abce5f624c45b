"""Two real CPU processes (gloo): metrics equal the single-process ones, every case counted once,
one run directory, reports written by rank 0 only."""

from __future__ import annotations

import csv

import pytest

from cli_helpers import TINY, ctbench, read_summary


@pytest.mark.slow
def test_ddp_cpu_matches_single_process(workdir):
    run = workdir / "outputs" / "ddp"
    common = ["dataset.phantom.cases=9", "dataset.test_cases=3", "dataset.root=${paths.data_dir}/synthetic_ddp"]
    # two processes started by Lightning from the command line: the console script, not this test process
    ctbench("train", *TINY, "trainer=ddp_cpu", *common, f"hydra.run.dir={run}", cwd=workdir, separate_process=True)
    ddp = read_summary(run)
    assert ddp["n_cases"] == 3  # 3 cases on 2 ranks: the sampler pads one, the report counts it once
    rows = list(csv.DictReader((run / "report" / "per_case.csv").open()))
    assert len(rows) == 3 * 4 and len({(r["case"], r["class"]) for r in rows}) == len(rows)
    assert not list(workdir.glob("outputs/*/.pl_hydra*")) and len(list((workdir / "outputs").glob("ddp*"))) == 1

    single = workdir / "outputs" / "ddp_eval"
    ctbench("eval", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "trainer=cpu", *TINY, *common,
            f"hydra.run.dir={single}", cwd=workdir)
    again = read_summary(single)
    assert again["n_cases"] == 3
    assert again["mean_dice"] == pytest.approx(ddp["mean_dice"], abs=1e-9)
    for name, metrics in ddp["per_class"].items():
        assert again["per_class"][name]["dice"] == pytest.approx(metrics["dice"], abs=1e-9)
