"""Overlap I/O with compute: one bounded background thread reads ahead, one writes behind.

Decoding the next chunk of a video and encoding the previous one take a few tens of ms per
frame; in a thread they run while the networks work (PyAV and torch release the GIL). The
queues hold at most ``depth`` chunks, so memory stays flat however long the clip is. An
error in a thread is raised again in the caller's thread, and stopping early (an error in
the caller, Ctrl-C, a consumer that stops iterating) stops the thread and waits for it.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")

_POLL_S = 0.1
"""How often a blocked thread looks whether it was told to stop."""
_END = object()


def _put(items: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room; False when ``stop`` was set first."""
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def read_ahead(items: Iterable[T], depth: int = 2, name: str = "pasl-read-ahead") -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the caller.

    Items come in their order. An exception raised by ``items`` is raised here, at the point
    where its item would have come. Closing this iterator early (``break``, an error, Ctrl-C
    in the caller) stops the thread and closes ``items`` there.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not _put(buffer, (item, None), stop):
                    return
            _put(buffer, (_END, None), stop)
        except BaseException as err:  # handed to the caller's thread
            _put(buffer, (_END, err), stop)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:  # make room so a blocked put sees the stop
                buffer.get_nowait()
            except queue.Empty:
                thread.join(_POLL_S)


class WriteBehind(Generic[T]):
    """Call ``write(item)`` for each :meth:`submit`\\ ted item in a background thread, in order.

    :meth:`submit` waits while ``depth`` items are pending. An exception from ``write`` is
    raised again by the next :meth:`submit` or by :meth:`close`; after it nothing more is
    written. :meth:`close` waits until everything is written; :meth:`abort` drops what is
    pending and waits for the item being written. As a context manager it closes on success
    and aborts on any exception (Ctrl-C included).
    """

    def __init__(self, write: Callable[[T], object], depth: int = 2, name: str = "pasl-write-behind"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._write = write
        self._pending: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._consume, name=name, daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._pending.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            try:
                self._write(item)
            except BaseException as err:  # handed to the caller's thread
                self._error = err
                self._stop.set()
                return

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, item: T) -> None:
        self._raise()
        if not _put(self._pending, item, self._stop):
            self._raise()
            raise RuntimeError("WriteBehind.submit after abort")

    def close(self) -> None:
        """Wait until every submitted item is written; raise the writer's error if it had one."""
        if self._thread.is_alive() and _put(self._pending, _END, self._stop):
            self._thread.join()
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop writing: pending items are dropped; returns once the thread has ended."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "WriteBehind[T]":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
