"""``report/progress.png`` from a run's logged metrics: TensorBoard events of a real tiny run, and a
Lightning ``metrics.csv`` whose epoch mapping is checked by hand."""

from __future__ import annotations

from pathlib import Path

from ctbench.reports.progress import read_metrics, write_progress_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_real_run_plots_loss_dice_and_learning_rate_per_epoch(trained_run, tmp_path):
    """The tiny run: 8 epochs, validation every 2nd epoch (epochs 1, 3, 5, 7), one learning rate per epoch."""
    metrics = read_metrics(trained_run)
    assert sorted(metrics["train/loss_epoch"]) == list(range(8))
    assert sorted(metrics["val/dice_liver"]) == [1, 3, 5, 7] == sorted(metrics["val/mean_dice"])
    assert {f"val/dice_{c}" for c in ("liver", "spleen", "kidney", "lesion")} <= set(metrics)
    rates = [k for k in metrics if k.startswith("lr-")]
    assert len(rates) == 1 and sorted(metrics[rates[0]]) == list(range(8))
    assert all(0.0 <= v <= 1.0 for v in metrics["val/mean_dice"].values())
    path = write_progress_png(trained_run)
    assert path == trained_run / "report" / "progress.png"
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 20_000


def test_metrics_csv_wins_and_keeps_each_epochs_last_value(tmp_path):
    """Lightning's CSVLogger writes one row per logging step with blanks for metrics not logged then."""
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text(
        "epoch,step,lr-SGD,train/loss_epoch,train/loss_step,val/dice_liver,val/mean_dice\n"
        "0,0,0.01,,1.50,,\n"
        "0,9,,1.25,,0.40,0.40\n"
        "1,10,0.009,,0.90,,\n"
        "1,19,,0.80,,0.70,0.65\n"
        "1,19,,,,0.75,\n")
    metrics = read_metrics(run)
    assert metrics["train/loss_epoch"] == {0: 1.25, 1: 0.80}
    assert metrics["val/dice_liver"] == {0: 0.40, 1: 0.75}  # the last value of epoch 1 wins
    assert metrics["lr-SGD"] == {0: 0.01, 1: 0.009} and metrics["train/loss_step"] == {0: 1.50, 1: 0.90}
    assert write_progress_png(run).read_bytes()[:8] == PNG_MAGIC


def test_run_without_logged_metrics_writes_nothing(tmp_path):
    assert write_progress_png(tmp_path) is None
    assert not Path(tmp_path / "report").exists()


def test_a_run_without_validations_yet_plots_its_loss_without_a_legend_warning(tmp_path):
    """One epoch where validation comes every 5th: the Dice panel says so instead of an empty legend (which
    matplotlib warned about in every such report)."""
    import warnings

    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text("epoch,step,lr-SGD,train/loss_epoch\n0,0,0.01,\n0,9,,1.25\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert write_progress_png(run).read_bytes()[:8] == PNG_MAGIC
