"""The checkpoint-selection metric (engine/module.py: ``val/mean_dice``) does not reward silence."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ctbench.engine.module import classes_present, dice_per_class, selection_dice

NUM_CLASSES = 3  # background, organ, lesion


def scores(cases):
    """(dice, present) of (prediction, truth) label maps, as validation_step computes them."""
    dice = torch.stack([dice_per_class(p, t, NUM_CLASSES) for p, t in cases])
    present = torch.stack([classes_present(t, NUM_CLASSES) for _, t in cases])
    return dice, present


def label(*boxes, shape=(12, 12)):
    a = torch.zeros(shape, dtype=torch.long)
    for value, (r0, r1, c0, c1) in boxes:
        a[r0:r1, c0:c1] = value
    return a


ORGAN_AND_LESION = label((1, (1, 10, 1, 10)), (2, (3, 5, 3, 5)))
LESION_FREE = label((1, (1, 10, 1, 10)))


def test_hand_case():
    # case 1: organ perfect, lesion half found (2 of 4 px: Dice 2*2/(2+4) = 2/3); case 2: lesion-free, no lesion predicted
    half = ORGAN_AND_LESION.clone()
    half[3, 3:5] = 1
    per_class, mean = selection_dice(*scores([(half, ORGAN_AND_LESION), (LESION_FREE, LESION_FREE)]))
    organ_case1 = 2 * 77 / (79 + 77)  # 77 organ pixels, predicted 79 (the two lesion pixels called organ)
    assert math.isclose(per_class[0].item(), (organ_case1 + 1.0) / 2, rel_tol=1e-6)
    assert math.isclose(per_class[1].item(), 2 / 3, rel_tol=1e-6)  # the lesion-free case is not counted
    assert math.isclose(mean.item(), (per_class[0].item() + 2 / 3) / 2, rel_tol=1e-6)


def test_empty_empty_case_leaves_the_metric_unchanged():
    half = ORGAN_AND_LESION.clone()
    half[3, 3:5] = 1
    cases = [(half, ORGAN_AND_LESION)]
    _, before = selection_dice(*scores(cases))
    # an image with no organ and no lesion, predicted empty: both classes empty-empty
    empty = torch.zeros_like(ORGAN_AND_LESION)
    _, after = selection_dice(*scores(cases + [(empty, empty)]))
    assert after.item() == before.item()
    # the former metric (plain mean over cases, empty-empty = 1) rose with it
    dice, _ = scores(cases + [(empty, empty)])
    assert dice.mean(0).mean().item() > before.item()


def test_a_class_no_case_holds_is_left_out():
    per_class, mean = selection_dice(*scores([(LESION_FREE, LESION_FREE)]))
    assert per_class[0].item() == 1.0 and math.isnan(per_class[1].item()) and mean.item() == 1.0
    _, none = selection_dice(*scores([(torch.zeros(4, 4, dtype=torch.long),) * 2]))
    assert math.isnan(none.item())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2 ** 16 - 1), st.integers(0, 2 ** 16 - 1)), min_size=1, max_size=5))
def test_predicting_nothing_never_raises_it(bits):
    """On any validation set, an empty prediction scores at most what any prediction scores."""
    def grid(value: int) -> torch.Tensor:  # a 4 x 4 label map with classes 0-2 from 16 bits (2 bits per pixel)
        return torch.tensor([((value >> (2 * i)) & 3) % NUM_CLASSES for i in range(8)] * 2).reshape(4, 4)

    cases = [(grid(p), grid(t)) for p, t in bits]
    _, predicted = selection_dice(*scores(cases))
    _, nothing = selection_dice(*scores([(torch.zeros_like(t), t) for _, t in cases]))
    if math.isnan(nothing.item()):  # no case holds any class: neither is defined
        assert math.isnan(predicted.item())
    else:
        assert nothing.item() == 0.0 and nothing.item() <= predicted.item()
