"""Fixtures for the model tests (helpers live in ``model_helpers.py``)."""

from __future__ import annotations

import pytest

from model_helpers import build, patch_side


@pytest.fixture
def build_model():
    return build


@pytest.fixture
def side_for():
    return patch_side
