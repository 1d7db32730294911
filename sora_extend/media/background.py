"""Run a generator on a thread of its own, a few items ahead of the one consuming it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
_DONE = object()


class Ahead(Generic[ItemT]):
    """`items`, produced on another thread (from now on) at most `depth` items ahead. The producer's errors
    surface in the consumer; leaving the `with` block stops the producer and waits for it."""

    def __init__(self, items: Iterator[ItemT], depth: int = 2, name: str = "sora-extend-ahead") -> None:
        self._items = items
        self._handoff: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _put(self, entry: tuple[bool, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put((True, item)):
                    return
            self._put((True, _DONE))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((False, exc))

    def __iter__(self) -> Iterator[ItemT]:
        return self

    def __next__(self) -> ItemT:
        if self._finished:
            raise StopIteration
        ok, item = self._handoff.get()
        if not ok:
            self._finished = True
            assert isinstance(item, BaseException)
            raise item
        if item is _DONE:
            self._finished = True
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Ahead[ItemT]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
