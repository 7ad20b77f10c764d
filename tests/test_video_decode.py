"""The one video decoder (``pasl.video``): ``read_video``'s start/count/step against OpenCV,
the frames ``pasl.align.read_video`` gave before it was built on PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pasl.errors import PASLError, VideoError
from pasl.video import iter_frame_chunks, iter_frames, read_video

pytest.importorskip("av")
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "faces" / "video"
VIDEO = VIDEOS / "pyfeat_single_face.mp4"  # 72 frames, 640x360
pytestmark = pytest.mark.skipif(not VIDEO.is_file(), reason=f"needs {VIDEO}")


@pytest.fixture(scope="module")
def opencv_frames() -> np.ndarray:
    """Every frame decoded by OpenCV, converted to RGB (the former ``read_video``)."""
    cv2 = pytest.importorskip("cv2")
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


@pytest.mark.parametrize("start, count, step", [(0, None, 1), (5, 10, 3), (70, None, 1), (71, 5, 2), (0, 4, 25), (3, 1, 1)])
def test_read_video_equals_opencv(opencv_frames, start, count, step):
    expected = opencv_frames[start::step][:count]
    frames = read_video(VIDEO, start=start, count=count, step=step)
    assert frames.dtype == np.uint8 and frames.shape == expected.shape
    np.testing.assert_array_equal(frames, expected)


def test_the_align_api_reads_with_the_same_decoder():
    from pasl.align import read_video as align_read_video

    assert align_read_video is read_video


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 100])
def test_chunks_are_read_video_cut_up(chunk_size):
    chunks = list(iter_frame_chunks(VIDEO, chunk_size, start=5, count=10, step=3))
    assert [len(c) for c in chunks[:-1]] == [chunk_size] * (len(chunks) - 1) and 1 <= len(chunks[-1]) <= chunk_size
    np.testing.assert_array_equal(np.concatenate(chunks), read_video(VIDEO, start=5, count=10, step=3))


def test_all_chunks_hold_every_frame():
    assert sum(len(c) for c in iter_frame_chunks(VIDEO, 16)) == 72


def test_nothing_to_read():
    with pytest.raises(ValueError, match="no frames could be read"):
        read_video(VIDEO, start=72)
    with pytest.raises(ValueError, match="no frames could be read"):
        read_video(VIDEO, count=0)


@pytest.mark.parametrize("start, step", [(-1, 1), (0, 0)])
def test_bad_arguments(start, step):
    with pytest.raises(ValueError, match="start >= 0 and step >= 1"):
        read_video(VIDEO, start=start, step=step)


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        next(iter_frame_chunks(VIDEO, 0))


def test_unreadable_files_raise_video_error(tmp_path):
    with pytest.raises(VideoError, match="could not be opened as a video") as info:
        next(iter_frames(tmp_path / "missing.mp4"))
    assert isinstance(info.value, PASLError)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError):
        read_video(tmp_path / "text.mp4")
