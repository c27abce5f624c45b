"""The survey-reproduction study: every claim experiment, one claims report, a verdict and a figure per claim.

    .venv/bin/python scripts/survey_study.py                    # the CPU study (C1-C10), 2 jobs side by side
    .venv/bin/python scripts/survey_study.py --only C7 C8       # some claims (shared runs are trained once)
    .venv/bin/python scripts/survey_study.py --study full --jobs 8   # the full-size presets (GPU node)
    .venv/bin/python scripts/survey_study.py --srun             # each job through `srun` (a SLURM cluster)

Each claim is an experiment in ``configs/experiment/claims/`` (its runs are the product of its
``hydra.sweeper.params``, exactly what ``ctbench train -m experiment=claims/NAME`` runs) and one or more
claim files in ``configs/claims/`` written before the study ran. This script

1. runs every job of the selected claims as ``ctbench train experiment=claims/NAME KEY=VALUE ...`` in
   ``multirun/claims/MODEL-LOSS-DIMSd-seedS[TAG]`` (``multirun/claims_full`` with ``--study full``),
   ``--jobs`` at a time, one thread each; a job two claims share runs once, a complete job is skipped
   and an interrupted one resumes (rerun the same command after a stop);
2. tests C3's DeepLab v1 checkpoint twice, ``ctbench eval ... postprocess=null`` and ``postprocess=crf``;
3. runs C9, ``ctbench loss-curves``, and tests its claim on the 450 paths (see :func:`figure9_claims`);
4. runs ``ctbench report RUNS --claims configs/claims`` (claims.md/.csv: paired per-case differences,
   bootstrap CI, Wilcoxon p, Holm), draws one paired figure per claim and writes
   ``survey-reproduction.md`` (``--doc``): one row per claim, its command, the measurement, the verdict
   and the wall time of its jobs. Nothing in that table is typed by hand.

Job wall times are in ``STUDY_DIR/study_jobs.json``; a claim's time is the sum of its jobs' wall times
(each job on its own core, ``--jobs`` of them side by side), i.e. the claim run alone with one job at a time.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ctbench.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from ctbench.run_folder import is_complete  # noqa: E402

EXPERIMENTS = ROOT / "configs" / "experiment" / "claims"
CLAIMS_DIR = ROOT / "configs" / "claims"

#: Claim -> (what the survey says, its section, the experiments it runs in order).
CLAIMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "C1": ("FCN skip connections refine the output: FCN-32s < FCN-16s < FCN-8s", "3.1", ("c1_fcn_skips",)),
    "C2": ("U-Net's concatenated skips and SegNet's pooling indices beat FCN's added skips / learned "
           "upsampling", "3.2.1-3.2.2", ("c2_unet_segnet",)),
    "C3": ("DeepLab v1's dense CRF refines the boundaries of the same network", "3.2.4", ("c3_crf",)),
    "C4": ("A cascaded FCN (liver, then lesions in the liver) beats one network on lesions", "3.1",
           ("c4_cascade",)),
    "C5": ("Attention gates help small structures (kidney, lesion)", "3.2", ("c5_attention",)),
    "C6": ("3D (volumetric input) beats 2D at the same training budget", "3.2.2", ("c6_3d_vs_2d",)),
    "C7": ("With a small foreground, focal or Combo loss is more likely to perform well; Tversky, "
           "focal Tversky, ExpLog and generalized Dice target small objects", "4.2-4.5", ("c7_small_losses",)),
    "C8": ("Combo loss is more stable", "4.5", ("c8_combo_stability",)),
    "C9": ("As IoU falls only focal and Combo loss rise monotonically (Figure 9)", "4.5", ()),
    "C10": ("Transfer learning from a pre-trained model helps", "5", ("c10_source", "c10_transfer")),
}


@dataclass
class Job:
    """One ``ctbench`` command and the run folder it fills."""

    name: str
    task: str
    overrides: list[str]
    run_dir: Path
    after: list[Path] = field(default_factory=list)
    claims: set[str] = field(default_factory=set)
    status: str = "pending"
    seconds: float = 0.0

    def command(self, ctbench: str, srun: bool) -> list[str]:
        cmd = [ctbench, self.task, *self.overrides, f"hydra.run.dir={self.run_dir}"]
        if self.task == "train":
            cmd.append("resume=true")  # resumes an interrupted job; starts one without a checkpoint
        return (["srun", "--cpus-per-task=1", f"--job-name={self.name}"] + cmd) if srun else cmd


def sweep_points(experiment: str) -> list[list[str]]:
    """The overrides of each job of ``experiment`` (the product of its ``hydra.sweeper.params``)."""
    data = yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text()) or {}
    params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    axes = [[f"{k}={v.strip()}" for v in str(values).split(",")] for k, values in params.items()]
    return [list(point) for point in itertools.product(*axes)]


def plan(claims: list[str], study: str) -> list[Job]:
    """Every job of ``claims``, each run folder once, in claim order (dependencies after their sources)."""
    from ctbench.config import compose_with_context

    jobs: dict[Path, Job] = {}
    extra = [] if study == "cpu" else [f"study={study}"]

    def add(job: Job, claim: str) -> Job:
        job = jobs.setdefault(job.run_dir, job)
        job.claims.add(claim)
        return job

    for claim in claims:
        sources: list[Path] = []
        for experiment in CLAIMS[claim][2]:
            for point in sweep_points(experiment):
                overrides = [f"experiment=claims/{experiment}", *point, *extra]
                cfg, ctx = compose_with_context("train", overrides)
                run_dir = Path(os.path.relpath(ctx.run_dir.resolve(), ROOT))
                job = add(Job(run_dir.name, "train", overrides, run_dir, after=list(sources)), claim)
                if experiment == "c10_source":
                    sources.append(job.run_dir)
                if experiment == "c3_crf":
                    for post in ("null", "crf"):
                        ckpt = run_dir / "checkpoints" / "best.ckpt"
                        evaluated = run_dir.parent / f"{run_dir.name}-eval-{post}"
                        add(Job(evaluated.name, "eval", [f"ckpt_path={ckpt}", f"postprocess={post}"], evaluated,
                                after=[run_dir]), claim)
    return list(jobs.values())


def run_jobs(jobs: list[Job], workers: int, srun: bool, study_dir: Path, log_dir: Path) -> None:
    """Run ``jobs`` ``workers`` at a time (a job waits for the jobs it depends on); times to study_jobs.json."""
    ctbench = shutil.which("ctbench", path=str(Path(sys.executable).parent)) or "ctbench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    lock = threading.Condition()
    by_dir = {j.run_dir: j for j in jobs}
    log_dir.mkdir(parents=True, exist_ok=True)
    times_file = study_dir / "study_jobs.json"

    def ready(job: Job) -> bool:
        return job.status == "pending" and all(by_dir[d].status in ("done", "skipped") for d in job.after
                                               if d in by_dir)

    def blocked(job: Job) -> bool:
        return job.status == "pending" and any(by_dir[d].status == "failed" for d in job.after if d in by_dir)

    def worker() -> None:
        while True:
            with lock:
                for job in jobs:
                    if blocked(job):
                        job.status = "failed"
                        print(f"[study] {job.name}: not run, a job it needs failed", flush=True)
                pending = [j for j in jobs if j.status == "pending"]
                if not pending:
                    lock.notify_all()
                    return
                job = next((j for j in pending if ready(j)), None)
                if job is None:
                    lock.wait(timeout=5)
                    continue
                job.status = "running"
            if is_complete(job.run_dir):
                status, seconds = "skipped", 0.0
                print(f"[study] {job.name}: complete, skipped", flush=True)
            else:
                print(f"[study] {job.name}: {' '.join(job.command('ctbench', srun)[1:])}", flush=True)
                start = time.perf_counter()
                with (log_dir / f"{job.name}.log").open("w") as log:
                    rc = subprocess.call(job.command(ctbench, srun), cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
                seconds = time.perf_counter() - start
                status = "done" if rc == 0 and is_complete(job.run_dir) else "failed"
                print(f"[study] {job.name}: {status} in {seconds / 60:.1f} min"
                      + ("" if status == "done" else f" (exit {rc}; log {log_dir / job.name}.log)"), flush=True)
            with lock:
                job.status, job.seconds = status, seconds
                if status != "skipped":  # merged into the file as it is now (another study may share it)
                    times = json.loads(times_file.read_text()) if times_file.is_file() else {}
                    times[str(job.run_dir)] = {"task": job.task, "overrides": job.overrides, "status": status,
                                               "seconds": round(seconds, 1), "claims": sorted(job.claims)}
                    atomic_write_json(times_file, times)
                lock.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def figure9_claims(curves_dir: Path) -> list[dict]:
    """C9 on ``loss_monotone.csv``: per path, focal's (Combo's) monotone indicator against the fraction of
    the other losses (all but focal and Combo) that are monotone on that path; paired over the paths,
    the same statistics and verdict rule as ``ctbench report --claims``, Holm across the two."""
    from ctbench.reports.claims import decide
    from ctbench.reports.statistics import adjust, paired_comparison

    by_loss: dict[str, dict[str, float]] = {}
    with (curves_dir / "loss_monotone.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = "|".join(row[k] for k in ("object", "confidence", "fp_share", "blur_sigma", "noise_seed"))
            by_loss.setdefault(row["loss"], {})[path] = float(row["monotone"])
    others = [k for k in by_loss if k not in ("focal", "combo")]
    rest = {p: sum(by_loss[k][p] for k in others) / len(others) for p in by_loss["focal"]}
    results = {f"C9{s}-{loss}-monotone": paired_comparison(by_loss[loss], rest)
               for s, loss in (("a", "focal"), ("b", "combo"))}
    adjust(results)
    return [{"id": key, "claim": f"{key.split('-')[1].capitalize()} loss is monotone on more Figure 9 paths than "
                                 f"the other {len(others)} losses",
             "metric": "monotone (0/1 per path)", "n": r.n, "mean_diff": r.mean_diff, "ci_low": r.ci_low,
             "ci_high": r.ci_high, "p_holm": r.p_holm, "effect": r.effect, "verdict": decide(r, "higher")}
            for key, r in results.items()]


def seed_noise(runs: list) -> dict[str, float]:
    """Per claim id, how much the claim's metric moves with the seed alone: the largest sample SD across
    seeds of a run's mean (the claim's metric and class) among the study's 2D (model, loss) cells with 3+
    seeds in one arm (same ``study.tag``; C8's: U-Net with Dice, with Combo). A one-seed claim whose mean difference is smaller than this is within seed noise."""
    from ctbench.reports.claims import load_claims
    from ctbench.reports.collect import Cell, nanstd

    by_arm: dict[tuple, list] = {}
    for r in runs:
        if r.summary.get("dims") == 2:
            by_arm.setdefault((r.model, r.loss, r.attribute("study.tag")), []).append(r)
    cells = [Cell(*key[:2], arm) for key, arm in by_arm.items() if len({r.summary.get("seed") for r in arm}) >= 3]
    noise = {}
    for claim in load_claims(CLAIMS_DIR):
        sds = [nanstd([r.class_mean(claim.metric, claim.cls) if claim.cls else r.score(claim.metric)
                       for r in cell.runs]) for cell in cells]
        sds = [v for v in sds if math.isfinite(v)]
        if sds:
            noise[claim.id] = max(sds)
    return noise


def claim_figures(runs: list, out: Path) -> dict[str, Path]:
    """Per claim file, per-case candidate vs baseline values (seed means) on one plot: ``out/ID.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctbench.reports.claims import load_claims, matches
    from ctbench.reports.collect import METRICS, Cell

    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    for claim in load_claims(CLAIMS_DIR):
        sides = [Cell(name, "", [r for r in runs if matches(r, sel)])
                 for name, sel in (("candidate", claim.candidate), ("baseline", claim.baseline))]
        if not all(s.runs for s in sides):
            continue
        if claim.statistic == "seed_sd":
            values = [s.case_seed_sd(claim.metric, claim.cls) for s in sides]
        else:
            values = [s.case_values(claim.metric, claim.cls) for s in sides]
        cases = [c for c in sorted(values[0]) if c in values[1]]
        if not cases:
            continue
        x = [values[1][c] for c in cases]
        y = [values[0][c] for c in cases]
        label = METRICS[claim.metric][0] + (f" ({claim.cls})" if claim.cls else " (foreground mean)")
        if claim.statistic == "seed_sd":
            label = f"seed SD of {label}"
        fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=110)
        finite = [v for v in x + y if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, zorder=0)
        ax.scatter(x, y, s=14, alpha=0.7)
        ax.set_xlabel(f"baseline: {' '.join(f'{v}' for v in claim.baseline.values() if v not in claim.candidate.values())}")
        ax.set_ylabel(f"candidate: {' '.join(f'{v}' for k, v in claim.candidate.items() if claim.baseline.get(k) != v)}")
        ax.set_title(f"{claim.id}\n{label}, {len(cases)} cases", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        figures[claim.id] = out / f"{claim.id}.png"
        fig.savefig(figures[claim.id])
        plt.close(fig)
    return figures


def _two_worker_wall(seconds: list[float], workers: int) -> float:
    """Wall time of ``seconds`` of jobs on ``workers`` workers, longest job first to the least loaded one."""
    loads = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += s
    return max(loads)


def _num(row: dict, key: str, digits: int = 3) -> str:
    try:
        value = float(row[key])
    except (KeyError, TypeError, ValueError):
        return ""
    return "" if math.isnan(value) else f"{value:+.{digits}f}" if key in ("mean_diff", "ci_low", "ci_high") \
        else f"{value:.{digits}g}"


def write_doc(doc: Path, report_dir: Path, figures: dict[str, Path], c9: list[dict], times: dict,
              noise: dict[str, float], args: argparse.Namespace, wall: float) -> None:
    """``survey-reproduction.md``: a row per claim file from claims.csv (and C9's rows), then figures."""
    with (report_dir / "claims.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    claim_seconds = {c: sum(v["seconds"] for v in times.values() if c in v["claims"]) for c in CLAIMS}
    claim_wall = {c: _two_worker_wall([v["seconds"] for v in times.values() if c in v["claims"]], args.jobs)
                  for c in CLAIMS}
    command = "scripts/survey_study.py" + (f" --only {' '.join(args.only)}" if args.only else "")
    lines = [f"Measured by `.venv/bin/python {command}` (study `{args.study}`, {args.jobs} jobs side by side): "
             f"{wall / 60:.0f} min wall for this invocation; {sum(v['seconds'] for v in times.values()) / 60:.0f} min "
             "of job time in all. Per claim, *time* is the sum of its jobs' wall times (its runs alone, one at a "
             "time; runs shared with an earlier claim are counted again), and in brackets the wall time of those jobs "
             f"on {args.jobs} workers (longest first; an estimate from the same job times, e.g. `--only C7`). Differences are candidate minus baseline;"
             " 95 % bootstrap CI of the mean paired difference; p: Wilcoxon signed-rank, Holm-corrected across the "
             f"{len(rows)} claims of `claims.csv` (C9: across its 2). *Seed SD*: how much the metric's run mean "
             "moves with the seed alone (the largest SD over seeds 0-2 of C8's U-Net cells, at C8's budget); a one-seed claim whose"
             " |mean diff| is below it is marked *within seed noise*, whatever its verdict.", "",
             "| claim | survey (section) | statement tested | metric | cases x runs (cand./base.) | mean diff "
             "[95 % CI] | p (Holm) | verdict | seed SD | time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, (says, section, _) in CLAIMS.items():
        if args.only and key not in args.only:
            continue
        mine = [r for r in rows if r["id"].split("-")[0].rstrip("abcdefghij") == key]
        if key == "C9":
            for r in c9:
                lines.append(f"| {r['id']} | {says} ({section}) | {r['claim']} | {r['metric']} | {r['n']} paths | "
                             f"{r['mean_diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
                             f"{r['p_holm']:.2g} | **{r['verdict']}** | | {r['seconds']:.0f} s |")
            continue
        for i, r in enumerate(mine):
            metric = f"{'seed SD of ' if r.get('statistic') == 'seed_sd' else ''}{r['metric']} " \
                     f"({r['class'] or 'foreground mean'})"
            measured = f"{_num(r, 'mean_diff')} [{_num(r, 'ci_low')}, {_num(r, 'ci_high')}]" if r["n_cases"] != "0" \
                else r["note"]
            sd = noise.get(r["id"])
            one_seed = r["candidate_runs"] == "1" or r["baseline_runs"] == "1"
            within = (sd is not None and one_seed and r.get("statistic") != "seed_sd" and r["mean_diff"] != ""
                      and abs(float(r["mean_diff"])) < sd)
            lines.append(f"| {r['id']} | {says + f' ({section})' if i == 0 else ''} | {r['claim']} | {metric} | "
                         f"{r['n_cases']} x {r['candidate_runs']}/{r['baseline_runs']} | {measured} | "
                         f"{_num(r, 'p_holm', 2)} | **{r['verdict']}** | "
                         f"{'' if sd is None else f'{sd:.3g}'}{' (within seed noise)' if within else ''} | "
                         f"{f'{claim_seconds[key] / 60:.0f} min ({claim_wall[key] / 60:.0f})' if i == 0 else ''} |")
    lines += ["", "Commands of each claim (what the study script runs; `ctbench train -m experiment=claims/NAME` runs "
              "the same jobs one at a time):", ""]
    for key, (_, _, experiments) in CLAIMS.items():
        if args.only and key not in args.only:
            continue
        cmds = [f"`ctbench train -m experiment=claims/{e}`" for e in experiments] or ["`ctbench loss-curves DIR`"]
        if key == "C3":
            cmds.append("`ctbench eval ckpt_path=RUN/checkpoints/best.ckpt postprocess=null|crf`")
        lines.append(f"- {key}: {', then '.join(cmds)}")
    lines += ["", "Figures (copied to `" + f"{doc.with_suffix('').name}/`" + "): per case, the candidate's value (y) "
              "against the baseline's (x), seed means; above the grey diagonal the candidate is higher. C9: the "
              "loss curves of `ctbench loss-curves`.", ""]
    folder = doc.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    for claim_id, path in figures.items():
        shutil.copyfile(path, folder / path.name)
        lines.append(f"![{claim_id}]({folder.name}/{path.name})")
    text = "\n".join(lines) + "\n"
    begin, end = "<!-- study:begin -->", "<!-- study:end -->"
    old = doc.read_text() if doc.is_file() else f"# Survey reproduction\n\n{begin}\n{end}\n"
    if begin not in old:
        old += f"\n{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    atomic_write_text(doc, f"{head}{begin}\n{text}{end}{rest.split(end, 1)[1]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="CLAIM", choices=list(CLAIMS),
                        help="claims to run (default: all, C1-C10)")
    parser.add_argument("--study", default="cpu", choices=("cpu", "full"), help="configs/study preset")
    parser.add_argument("--jobs", type=int, default=2, help="jobs side by side, one thread each (default 2)")
    parser.add_argument("--srun", action="store_true", help="start each job with srun (a SLURM allocation)")
    parser.add_argument("--doc", default=None,
                        help="markdown file whose study section is (re)written (default STUDY_DIR/survey-reproduction.md)")
    parser.add_argument("--dry-run", action="store_true", help="print the jobs and their commands, run nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="run no job: report and document the runs that are complete (e.g. mid-study)")
    args = parser.parse_args()
    claims = args.only or list(CLAIMS)
    study_dir = ROOT / "multirun" / ("claims" if args.study == "cpu" else "claims_full")
    study_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = plan(claims, args.study)
    print(f"[study] {len(jobs)} jobs for {', '.join(claims)} in {study_dir.relative_to(ROOT)}", flush=True)
    if args.dry_run:
        for job in jobs:
            after = f"  (after {', '.join(d.name for d in job.after)})" if job.after else ""
            print(f"{','.join(sorted(job.claims)):>8}  ctbench {' '.join(job.command('ctbench', args.srun)[1:])}{after}")
        return 0
    if not args.report_only:
        run_jobs(jobs, args.jobs, args.srun, study_dir, study_dir / "logs")
    ctbench = shutil.which("ctbench", path=str(Path(sys.executable).parent)) or "ctbench"
    c9: list[dict] = []
    if "C9" in claims:
        curves = study_dir / "c9_loss_curves"
        timing = curves / "study_seconds.json"
        if not timing.is_file():  # like a complete run, finished curves are not computed again
            t0 = time.perf_counter()
            subprocess.run([ctbench, "loss-curves", str(curves)], cwd=ROOT, check=True)
            atomic_write_json(timing, {"seconds": round(time.perf_counter() - t0, 1)})
        seconds = json.loads(timing.read_text())["seconds"]
        c9 = [{**row, "seconds": seconds} for row in figure9_claims(curves)]
        print(f"[study] C9 loss curves: {seconds:.0f} s", flush=True)
    report_dir = study_dir / "report"
    subprocess.run([ctbench, "report", str(study_dir), "--claims", str(CLAIMS_DIR), "--out", str(report_dir)],
                   cwd=ROOT, check=False)
    from ctbench.reports.collect import collect

    runs, _ = collect([study_dir])  # read once for the figures and the seed noise
    figures = claim_figures(runs, report_dir / "figures")
    times = json.loads((study_dir / "study_jobs.json").read_text()) if (study_dir / "study_jobs.json").is_file() else {}
    doc = Path(args.doc) if args.doc else report_dir / "survey-reproduction.md"
    if "C9" in claims and (study_dir / "c9_loss_curves" / "loss_curves.png").is_file():
        figures = {"C9-loss-curves": study_dir / "c9_loss_curves" / "loss_curves.png", **figures}
    write_doc(doc, report_dir, figures, c9, times, seed_noise(runs), args, time.perf_counter() - start)
    failed = [j.name for j in jobs if j.status == "failed"]
    print(f"[study] wrote {doc}; {len(failed)} failed job(s){': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
