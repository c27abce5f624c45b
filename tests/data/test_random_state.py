"""The training stream's random state survives a checkpoint (ctbench.data.random_state)."""

from __future__ import annotations

import io
import random

import numpy as np
import torch
from monai.transforms import Compose, RandCropByLabelClassesd, RandFlipd, RandGaussianNoised

from ctbench.data.random_state import capture, rank_state, restore, seed_rank, transform_states
from ctbench.engine.safe_load import safe_load


def _chain() -> Compose:
    chain = Compose([RandCropByLabelClassesd(["image", "label"], "label", (4, 4), num_classes=2, num_samples=2),
                     RandFlipd(["image", "label"], prob=0.5, spatial_axis=0),
                     RandGaussianNoised(["image"], prob=1.0)])
    chain.set_random_state(seed=3)
    return chain


def _draws(chain: Compose) -> list[np.ndarray]:
    item = {"image": np.arange(256, dtype=np.float32).reshape(1, 16, 16),
            "label": (np.arange(256).reshape(1, 16, 16) % 7 == 0).astype(np.uint8)}
    out = [np.asarray(p["image"]) for _ in range(3) for p in chain(dict(item))]
    return [*out, torch.rand(4).numpy(), np.random.rand(4), np.array([random.random()])]


def test_every_random_transform_is_found_once():
    chain = _chain()
    # the Compose's own generator, the crop's (its inner cropper shares or owns one), the flip's, the noise's
    assert len(transform_states(chain)) == len({id(r) for r in transform_states(chain)}) >= 4


def test_a_restored_state_draws_the_same_stream_through_a_weights_only_checkpoint(tmp_path):
    chain = _chain()
    _draws(chain)
    buffer = io.BytesIO()
    torch.save({"random_state": capture(chain)}, buffer)
    first = _draws(chain)
    path = tmp_path / "last.ckpt"
    path.write_bytes(buffer.getvalue())
    state = safe_load(path)["random_state"]  # torch.load(weights_only=True)
    other = _chain()  # a new process: the chain rebuilt and seeded from the start
    assert restore(other, state) is None
    again = _draws(other)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(_draws(_chain())[0], first[0])  # the stream from the seed is another one


def test_a_chain_with_other_transforms_is_not_restored_and_says_why():
    state = capture(_chain())
    shorter = Compose([RandFlipd(["image"], prob=0.5)])
    reason = restore(shorter, state)
    assert reason is not None and "random transforms" in reason
    assert restore(shorter, {"format": 0}) == "the checkpoint's random state has another format"


def test_a_malformed_state_is_refused_with_the_reason_and_changes_nothing():
    chain = _chain()
    state = capture(chain)
    state["transforms"][0][1] = torch.zeros(3, dtype=torch.int64)
    before = torch.get_rng_state()
    reason = restore(chain, state)
    assert reason is not None and reason.startswith("the checkpoint's random state is malformed")
    assert torch.equal(torch.get_rng_state(), before)


def test_each_ddp_rank_draws_its_own_reproducible_stream():
    def rank_draws(rank: int) -> list[np.ndarray]:
        chain = _chain()
        seed_rank(chain, 3, rank)
        return _draws(chain)

    one, two = rank_draws(1), rank_draws(2)
    assert all(np.array_equal(a, b) for a, b in zip(one, rank_draws(1), strict=True))
    # crops, noise and the global generators (dropout, sampling order) all differ between ranks
    assert not any(np.array_equal(a, b) for a, b in zip(one, two, strict=True))
    assert not np.array_equal(one[0], _draws(_chain())[0])  # rank 1 is not rank 0's (the seed's) stream


def test_a_rank_resumes_from_its_own_saved_state():
    zero, one = capture(_chain()), capture(_chain())
    one["python"] = "rank one's"
    ddp = {"random_state": zero, "random_state_by_rank": [zero, one]}
    assert rank_state(ddp, 0) == (zero, None) and rank_state(ddp, 1) == (one, None)
    assert rank_state({"random_state": zero}, 0) == (zero, None)  # a single-process checkpoint
    assert rank_state({"random_state": zero}, 1) == (None, "the checkpoint holds no random state for rank 1")
    assert rank_state(ddp, 2) == (None, "the checkpoint holds no random state for rank 2")  # more ranks now
    assert rank_state({}, 0) == (None, "the checkpoint holds no random state for rank 0")
