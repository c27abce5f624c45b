"""C9's table: per object size, the survey's "only focal and Combo are monotone", exact on the paths."""

from __future__ import annotations

import csv

import pytest

from ctbench.errors import CTBenchError
from ctbench.reports.figure9 import figure9_markdown, figure9_table, stratum_verdicts, survey_losses

HEADER = ["loss", "object", "object_voxels", "confidence", "fp_share", "blur_sigma", "noise_seed", "points",
          "lowest_iou", "monotone", "rise"]
#: per loss, per object, the monotone flag of each path (3 paths per object)
FLAGS = {
    "focal": {"large": [1, 1, 1], "small": [1, 0, 1]},
    "combo": {"large": [1, 1, 1], "small": [1, 1, 1]},
    "dice": {"large": [1, 0, 1], "small": [0, 0, 1]},
    "ce": {"large": [1, 1, 0], "small": [1, 1, 1]},
    "topk": {"large": [1, 1, 1], "small": [1, 1, 1]},  # after the survey: outside the sentence
}


def write_monotone_csv(folder, flags=FLAGS, single_point_path=True):
    rows = [HEADER]
    for loss, per_object in flags.items():
        for obj, values in per_object.items():
            for i, flag in enumerate(values):
                rows.append([loss, obj, "1600" if obj == "large" else "25", "0.9", str(i / 4), "0", "", "11",
                             "0", str(flag), "1"])
            if single_point_path:  # one prediction only: no IoU change, left out whatever its flag
                rows.append([loss, obj, "1", "0.6", "1", "0", "", "1", "1", "0", "0"])
    with (folder / "loss_monotone.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_counts_per_loss_and_size_leave_single_point_paths_out(tmp_path):
    write_monotone_csv(tmp_path)
    rows = {r.loss: r for r in figure9_table(tmp_path, compared={"dice", "ce"})}
    assert list(rows) == list(FLAGS)
    assert rows["dice"].monotone == {"large": 2, "small": 1} and rows["dice"].paths == {"large": 3, "small": 3}
    assert rows["focal"].fraction("small") == pytest.approx(2 / 3)
    assert [r.loss for r in rows.values() if not r.in_sentence] == ["topk"]


def test_the_sentence_holds_where_only_focal_and_combo_are_always_monotone(tmp_path):
    # large: focal and Combo 3/3, dice 2/3, ce 2/3 (topk 3/3 is after the survey): holds
    # small: focal 2/3, and ce 3/3 like Combo: does not hold, for both reasons
    write_monotone_csv(tmp_path)
    verdicts = stratum_verdicts(figure9_table(tmp_path, compared={"dice", "ce"}))
    assert verdicts == {"large": "holds",
                        "small": "does not hold: focal not monotone on 1 of 3 paths; ce also monotone on every path"}


def test_another_loss_monotone_everywhere_breaks_only(tmp_path):
    write_monotone_csv(tmp_path)
    verdicts = stratum_verdicts(figure9_table(tmp_path, compared={"dice", "ce", "topk"}))
    assert verdicts["large"] == "does not hold: topk also monotone on every path"


def test_markdown_has_a_row_per_loss_a_column_per_size_and_the_verdicts(tmp_path):
    write_monotone_csv(tmp_path)
    text = figure9_markdown(figure9_table(tmp_path, compared={"dice", "ce"}))
    lines = text.splitlines()
    assert lines[0] == "| loss | large (40 x 40 px) | small (5 x 5 px) |"
    assert "| **`focal`** | 1.00 (3/3) | 0.67 (2/3) |" in lines
    assert "| `topk` (after the survey) | 1.00 (3/3) | 1.00 (3/3) |" in lines
    assert lines[len(FLAGS) + 2].startswith("| **verdict** | **holds** | **does not hold: focal")
    assert "no p-value" in text


def test_survey_losses_are_the_configs_that_cite_the_survey():
    losses = survey_losses()
    assert {"focal", "combo", "ce", "dice", "wce", "tversky"} <= losses
    assert not {"topk", "dice_topk", "dice_focal", "boundary", "hausdorff_dt"} & losses


def test_missing_or_partial_csv_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(CTBenchError, match="ctbench loss-curves"):
        figure9_table(tmp_path)
    write_monotone_csv(tmp_path, {"focal": FLAGS["focal"], "dice": FLAGS["dice"]})
    with pytest.raises(CTBenchError, match="no path of combo"):
        figure9_table(tmp_path)
    write_monotone_csv(tmp_path, {**FLAGS, "ce": {"large": [1, 1, 1]}})
    with pytest.raises(CTBenchError, match="ce lacks paths of some object sizes"):
        figure9_table(tmp_path)
