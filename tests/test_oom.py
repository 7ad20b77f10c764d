"""Out-of-memory back-off: a batch that does not fit is retried with half the frames, down to one."""

from __future__ import annotations

import pytest
import torch

from pasl.errors import OutOfMemoryError, PASLError
from pasl.generate import generate_faces
from pasl.oom import Backoff


class FittingGenerator(torch.nn.Module):
    """A generator stand-in that runs out of memory on more than ``limit`` frames and records each call's size."""

    def __init__(self, limit: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.5))
        self.limit = limit
        self.calls: list[tuple[int, bool]] = []

    def forward(self, depth, landmarks, style):
        fits = depth.shape[0] <= self.limit
        self.calls.append((depth.shape[0], fits))
        if not fits:
            raise torch.OutOfMemoryError(f"CUDA out of memory (fake: {depth.shape[0]} > {self.limit} frames)")
        mix = depth * self.weight + landmarks.flip(-1) * (1 - self.weight) + style[:, :3, None, None]
        return torch.sigmoid(mix)


def maps(count: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    depth = torch.rand(count, 3, 256, 256, generator=gen)
    landmarks = (torch.rand(count, 3, 256, 256, generator=gen) > 0.9).float()
    style = torch.randn(count, 128, generator=gen)
    return style, depth, landmarks


def test_a_batch_that_does_not_fit_is_halved_and_gives_the_unbatched_result():
    style, depth, landmarks = maps(11)
    has_face = torch.ones(11, dtype=torch.bool)
    has_face[5] = False
    reference = generate_faces(FittingGenerator(limit=11), style, depth, landmarks, has_face, batch_size=11)
    generator, freed, progress = FittingGenerator(limit=3), [], []
    faces = generate_faces(generator, style, depth, landmarks, has_face, batch_size=8, empty_cache=lambda: freed.append(1),
                           progress=progress.append)
    assert torch.equal(faces, reference)
    assert not faces[5].any()  # no face: black, never generated
    # frames 0-7 (7 rows: frame 5 has no face) and 0-3 fail, then batches of 2 frames (4-5 has 1 row) and the last one alone
    assert generator.calls == [(7, False), (4, False), (2, True), (2, True), (1, True), (2, True), (2, True), (1, True)]
    assert len(freed) == 2
    assert progress == [2, 4, 6, 8, 10, 11]


def test_the_halved_size_is_kept_across_calls():
    style, depth, landmarks = maps(4)
    backoff, generator = Backoff(4, empty_cache=lambda: None), FittingGenerator(limit=2)
    first = generate_faces(generator, style, depth, landmarks, batch_size=backoff)
    second = generate_faces(generator, style, depth, landmarks, batch_size=backoff)
    assert torch.equal(first, second) and backoff.batch_size == 2
    assert generator.calls == [(4, False), (2, True), (2, True), (2, True), (2, True)]  # the second call never fails


def test_one_frame_that_does_not_fit_is_one_clear_error():
    style, depth, landmarks = maps(3)
    generator, freed = FittingGenerator(limit=0), []
    with pytest.raises(OutOfMemoryError) as caught:
        generate_faces(generator, style, depth, landmarks, batch_size=4, empty_cache=lambda: freed.append(1))
    message = str(caught.value)
    assert isinstance(caught.value, PASLError) and isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    assert "the generator ran out of GPU memory" in message and "batch size 4 halved down to 1" in message and "fp16" in message
    assert "\n" not in message
    assert [size for size, _ in generator.calls] == [3, 1] and len(freed) == 1  # 3 frames fail, cache freed, 1 frame fails: give up


def test_other_errors_are_not_retried():
    calls = []

    def step(part):
        calls.append(part)
        raise RuntimeError("not a memory error")

    with pytest.raises(RuntimeError, match="not a memory error"):
        Backoff(8, empty_cache=lambda: None).run(10, step)
    assert len(calls) == 1


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        Backoff(0)
