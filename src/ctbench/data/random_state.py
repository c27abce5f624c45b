"""The training stream's random state, saved in every checkpoint so that a resumed run continues it.

A run draws its patches, crops, augmentations, sampling order and dropout masks from torch's, NumPy's and
Python's global generators and from one ``numpy.random.RandomState`` per random MONAI transform (seeded
from ``seed`` when the training loader is built). Lightning restores weights, optimiser, schedule and loop
counters, not these: a resumed run re-seeded at start-up would replay the stream of epoch 0 from wherever
it stopped. :func:`capture` and :func:`restore` carry the generators through the checkpoint (as tensors and
plain values, which ``torch.load(weights_only=True)`` reads); a run resumed from a checkpoint written at
the end of an epoch then trains the same batches, weights and numbers as the run never interrupted
(single process, ``num_workers=0``: the CPU default; loader workers draw from seeds derived from torch's
generator, so they continue a new stream rather than replay the old one).

A checkpoint written inside an epoch (SIGTERM, ``scancel``, ``pkill``: ``SaveOnInterrupt``) also holds the
state at that epoch's start and how many of its batches were trained; :class:`ReplayingLoader` then rebuilds
the epoch's sampling order from the start state, draws (and drops) the trained batches so that every crop
transform is where the interrupted run left it, and sets torch's, NumPy's and Python's generators to the
checkpoint's (the dropout masks): the rest of the epoch is the uninterrupted run's, patch for patch. Lightning
alone would start a fresh draw there (its "dataloader is not resumable" warning).

Under DDP every rank starts from the same ``seed`` (Lightning's ``seed_everything``: the same initial
weights), so without :func:`seed_rank` every rank would draw the same crops, flips and dropout masks for its
own cases. Rank 0 keeps the single-process stream; rank r > 0 re-seeds from ``(seed, r)``, and a checkpoint
holds every rank's state (:func:`rank_state` picks a rank's on resume).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader

#: bump when the saved layout changes: an older layout is not restored (the stream restarts from the seed)
FORMAT = 1


def transform_states(chain: Any) -> list[np.random.RandomState]:
    """Every ``RandomState`` a transform chain draws from, each once, in a fixed order: a depth-first walk
    over the chain's MONAI transforms and the lists and mappings that hold them."""
    from monai.transforms import Transform

    found: dict[int, np.random.RandomState] = {}

    def walk(obj: Any, depth: int) -> None:
        if depth > 16:
            return
        if isinstance(obj, np.random.RandomState):
            found.setdefault(id(obj), obj)
        elif isinstance(obj, list | tuple):
            for item in obj:
                walk(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item, depth + 1)
        elif isinstance(obj, Transform):
            for item in vars(obj).values():
                walk(item, depth + 1)

    walk(chain, 0)
    return list(found.values())


def _pack(state: tuple) -> list[Any]:
    """A ``RandomState.get_state()`` tuple with its key array as a tensor (``weights_only``-loadable)."""
    name, keys, pos, has_gauss, cached = state
    return [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _unpack(packed: Any) -> tuple:
    """:func:`_pack`'s inverse; ValueError when ``packed`` is not a Mersenne-Twister state."""
    if not isinstance(packed, list | tuple) or len(packed) != 5 or packed[0] != "MT19937":
        raise ValueError("a NumPy state is not [MT19937, keys, pos, has_gauss, cached]")
    _, keys, pos, has_gauss, cached = packed
    if not isinstance(keys, torch.Tensor) or keys.shape != (624,) or not 0 <= int(pos) <= 624:
        raise ValueError("a NumPy state's keys are not 624 integers")
    return "MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)


def capture(chain: Any) -> dict[str, Any]:
    """The global generators' states and those of ``chain``'s transforms, as checkpoint-safe values."""
    state = {"format": FORMAT, "torch": torch.get_rng_state(), "numpy": _pack(np.random.get_state()),
             "python": random.getstate(), "transforms": [_pack(r.get_state()) for r in transform_states(chain)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(chain: Any, state: dict[str, Any]) -> str | None:
    """Set the generators to ``state`` (from :func:`capture`); None when restored, else why not (another
    format, or a chain with another number of random transforms: the code changed since the checkpoint)."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return "the checkpoint's random state has another format"
    generators = transform_states(chain)
    try:
        saved = [_unpack(packed) for packed in state["transforms"]]
        global_numpy, python = _unpack(state["numpy"]), _python_state(state["python"])
        torch_state = state["torch"]
        if not (isinstance(torch_state, torch.Tensor) and torch_state.dtype == torch.uint8
                and torch_state.shape == torch.get_rng_state().shape):
            raise ValueError("torch's state is not the byte tensor torch.get_rng_state() gives")
    except (KeyError, TypeError, ValueError, IndexError) as err:
        return f"the checkpoint's random state is malformed ({err})"
    if len(generators) != len(saved):
        return f"the checkpoint's training chain had {len(saved)} random transforms, this one has {len(generators)}"
    _set_globals(torch_state, global_numpy, python, state.get("cuda"))
    for generator, values in zip(generators, saved, strict=True):
        generator.set_state(values)
    return None


def _python_state(saved: Any) -> tuple:
    """``random.getstate()``'s tuple from its checkpointed form (lists after a round trip)."""
    return int(saved[0]), tuple(int(v) for v in saved[1]), saved[2]


def restore_globals(state: dict[str, Any]) -> None:
    """Only the global generators of ``state``, a :func:`capture` that :func:`restore` has accepted."""
    _set_globals(state["torch"], _unpack(state["numpy"]), _python_state(state["python"]), state.get("cuda"))


def _set_globals(torch_state: torch.Tensor, global_numpy: tuple, python: tuple, cuda: Any) -> None:
    torch.set_rng_state(torch_state)
    np.random.set_state(global_numpy)
    random.setstate(python)
    if isinstance(cuda, list) and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class ReplayingLoader(DataLoader):
    """MONAI's training ``DataLoader`` that remembers the random state at each epoch's start
    (:attr:`epoch_start`, when its iterator is made) and, once :attr:`replay` is set, starts its next iterator
    inside that epoch: ``(epoch_start, now, trained)`` restores ``epoch_start`` (the sampling order and the crop
    transforms), draws and drops ``trained`` batches, then sets the global generators to ``now`` (a
    :func:`capture` of the checkpoint). Why not Lightning's stateful-loader protocol: it would restore the
    position, not the patches; the transforms' generators are the stream. Attributes, not ``__init__``
    arguments, so that Lightning can rebuild the loader from its arguments."""

    chain: Any = None
    epoch_start: dict[str, Any] | None = None
    replay: tuple[dict[str, Any], dict[str, Any], int] | None = None

    def __iter__(self):
        replay, self.replay = self.replay, None
        if replay is None:
            self.epoch_start = capture(self.chain) if self.chain is not None else None
            return super().__iter__()
        epoch_start, now, trained = replay
        restore(self.chain, epoch_start)
        self.epoch_start = epoch_start
        batches = super().__iter__()
        for _ in range(trained):
            next(batches)
        restore_globals(now)
        return batches


def seed_rank(chain: Any, seed: int, rank: int) -> None:
    """Rank ``rank``'s own stream: torch's, NumPy's and Python's generators and ``chain``'s transforms seeded
    from ``(seed, rank)`` (NumPy's ``SeedSequence``: independent streams for distinct ranks)."""
    derived = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    torch.manual_seed(derived)
    np.random.seed(derived)
    random.seed(derived)
    chain.set_random_state(seed=derived)


def rank_state(saved: dict[str, Any], rank: int) -> tuple[dict[str, Any] | None, str | None]:
    """The random state rank ``rank`` resumes from, out of a datamodule's saved state (``random_state``: rank
    0's, or the only process's; ``random_state_by_rank``: every DDP rank's), and why there is none."""
    by_rank = saved.get("random_state_by_rank")
    if isinstance(by_rank, list | tuple) and rank < len(by_rank):
        return by_rank[rank], None
    if rank == 0 and saved.get("random_state") is not None:
        return saved["random_state"], None
    return None, f"the checkpoint holds no random state for rank {rank}"
