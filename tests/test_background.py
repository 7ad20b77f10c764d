"""Read-ahead and write-behind threads: order, bounded queues, errors raised in the caller, clean stops."""

import threading
import time

import pytest

from pasl.background import WriteBehind, read_ahead


def _wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


class Counting:
    """An iterable that records how far it was read and whether it was closed."""

    def __init__(self, count, fail_at=None):
        self.count, self.fail_at = count, fail_at
        self.produced = 0
        self.closed = threading.Event()

    def __iter__(self):
        try:
            for i in range(self.count):
                if i == self.fail_at:
                    raise OSError(f"bad item {i}")
                self.produced = i + 1
                yield i
        finally:
            self.closed.set()


def test_read_ahead_keeps_the_order():
    assert list(read_ahead(range(50), depth=3)) == list(range(50))


def test_read_ahead_is_bounded():
    source = Counting(100)
    items = read_ahead(source, depth=2)
    assert next(items) == 0
    # the producer can only fill the queue (2) and hold one item waiting for room
    time.sleep(0.5)
    assert 1 <= source.produced <= 1 + 2 + 1
    items.close()
    assert source.closed.wait(5)


def test_read_ahead_raises_the_producers_error_in_order():
    items = read_ahead(Counting(10, fail_at=4), depth=2)
    assert [next(items) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(OSError, match="bad item 4"):
        next(items)


def test_read_ahead_stops_its_thread_when_the_consumer_stops():
    source = Counting(10**6)
    before = threading.active_count()
    for item in read_ahead(source, depth=2):
        if item == 3:
            break
    assert source.closed.wait(5)
    assert _wait_for(lambda: threading.active_count() <= before)


def test_read_ahead_rejects_a_zero_depth():
    with pytest.raises(ValueError, match="depth"):
        next(read_ahead([1], depth=0))


def test_write_behind_writes_everything_in_order():
    written = []
    with WriteBehind(written.append, depth=2) as writer:
        for i in range(30):
            writer.submit(i)
    assert written == list(range(30))


def test_write_behind_is_bounded():
    release = threading.Event()
    written = []

    def slow(item):
        release.wait(5)
        written.append(item)

    writer = WriteBehind(slow, depth=2)
    writer.submit(0)  # taken by the thread, which then blocks in slow()
    assert _wait_for(lambda: writer._pending.qsize() == 0)
    writer.submit(1)
    writer.submit(2)
    assert writer._pending.qsize() == 2
    blocked = threading.Thread(target=writer.submit, args=(3,))
    blocked.start()
    time.sleep(0.3)
    assert blocked.is_alive()  # a full queue makes the caller wait
    release.set()
    blocked.join(5)
    writer.close()
    assert written == [0, 1, 2, 3]


def test_write_behind_raises_the_writers_error_in_the_caller():
    def failing(item):
        if item == 2:
            raise OSError("disk full")

    writer = WriteBehind(failing, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            writer.submit(i)
            time.sleep(0.01)
    writer.abort()


def test_write_behind_close_reports_a_late_error():
    def failing(item):
        raise ValueError("cannot encode")

    writer = WriteBehind(failing, depth=4)
    writer.submit(0)
    with pytest.raises(ValueError, match="cannot encode"):
        writer.close()


def test_write_behind_aborts_on_an_exception_in_the_block():
    written = []
    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(written.append, depth=2) as writer:
            writer.submit(0)
            raise KeyboardInterrupt
    assert not writer._thread.is_alive()
    assert written in ([], [0])
