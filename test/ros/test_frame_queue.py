"""LatestFrameSlot with real threads: newest frame only, bounded lag, nothing processed twice, close wakes."""
from __future__ import annotations

import threading
import time

import pytest

from dcmpnet_ros.frame_queue import LatestFrameSlot


def test_put_replaces_and_returns_stale_item():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert slot.pending()
    assert slot.get(timeout=0) == 3
    assert not slot.pending()
    assert slot.get(timeout=0) is None
    assert (slot.put_count, slot.dropped, slot.taken) == (3, 2, 1)


def test_get_times_out():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    start = time.monotonic()
    assert slot.get(timeout=0.05) is None
    assert time.monotonic() - start >= 0.045
    with pytest.raises(ValueError, match="timeout: expected None or >= 0 seconds, got -1"):
        slot.get(timeout=-1)


def test_none_is_refused():
    with pytest.raises(ValueError, match="item: expected a frame, got None"):
        LatestFrameSlot().put(None)


def test_close_wakes_a_waiting_consumer():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    got = []
    waiting = threading.Event()

    def consumer():
        waiting.set()
        got.append(slot.get(timeout=None))

    thread = threading.Thread(target=consumer)
    thread.start()
    waiting.wait(5)
    time.sleep(0.05)                       # let it block inside get()
    start = time.monotonic()
    slot.close()
    thread.join(5)
    assert not thread.is_alive() and got == [None]
    assert time.monotonic() - start < 2
    assert slot.closed and slot.get(timeout=None) is None


def test_close_drops_pending_and_later_puts():
    slot: LatestFrameSlot[str] = LatestFrameSlot()
    slot.put("a")
    slot.close()
    assert slot.dropped == 1
    assert slot.put("b") == "b"            # handed back so the caller can count it
    assert slot.get(timeout=0) is None
    assert (slot.put_count, slot.dropped, slot.taken) == (2, 2, 0)


def test_slow_consumer_sees_only_newest_frames():
    """A 1 kHz producer and a ~100 Hz consumer: the consumer lags by a few frames at most, never a backlog."""
    slot: LatestFrameSlot[tuple] = LatestFrameSlot()
    produced = [0]
    consumed: list[tuple[int, int, float]] = []    # (frame id, frames produced when taken, age in s)
    n_frames = 300

    def producer():
        for i in range(1, n_frames + 1):
            slot.put((i, time.monotonic()))
            produced[0] = i
            time.sleep(0.001)

    def consumer():
        while True:
            item = slot.get(timeout=None)
            if item is None:
                return
            consumed.append((item[0], produced[0], time.monotonic() - item[1]))
            time.sleep(0.01)                  # "inference"

    workers = [threading.Thread(target=consumer), threading.Thread(target=producer)]
    for t in workers:
        t.start()
    workers[1].join(30)
    deadline = time.monotonic() + 5
    while slot.pending() and time.monotonic() < deadline:
        time.sleep(0.005)
    slot.close()
    workers[0].join(5)
    ids = [c[0] for c in consumed]
    assert ids == sorted(set(ids)), "a frame was processed twice or out of order"
    assert ids[-1] == n_frames, "the newest frame must be processed once the producer stops"
    assert len(ids) < n_frames / 2, "the slow consumer should skip most frames"
    assert slot.taken + slot.dropped == slot.put_count == n_frames
    # lag in frames: a FIFO queue would fall ~n_frames * 0.9 behind; the slot only by what arrived during one get
    assert max(p - i for i, p, _ in consumed) <= 25
    assert max(age for *_, age in consumed) < 1.0


def test_many_producers_one_consumer_account_for_every_frame():
    slot: LatestFrameSlot[tuple] = LatestFrameSlot()
    seen: list[tuple] = []
    returned_stale = []
    lock = threading.Lock()

    def producer(pid):
        for i in range(200):
            stale = slot.put((pid, i))
            if stale is not None:
                with lock:
                    returned_stale.append(stale)

    def consumer():
        while (item := slot.get(timeout=None)) is not None:
            seen.append(item)

    cons = threading.Thread(target=consumer)
    cons.start()
    prods = [threading.Thread(target=producer, args=(p,)) for p in range(4)]
    for t in prods:
        t.start()
    for t in prods:
        t.join(30)
    deadline = time.monotonic() + 5
    while slot.pending() and time.monotonic() < deadline:
        time.sleep(0.005)
    slot.close()
    cons.join(5)
    assert len(seen) == len(set(seen)), "a frame was handed out twice"
    assert not set(seen) & set(returned_stale), "a dropped frame was also processed"
    assert len(seen) + len(returned_stale) == 800 == slot.put_count
    assert slot.taken == len(seen) and slot.dropped == len(returned_stale)
    for pid in range(4):                       # each producer's frames come out in order
        mine = [i for p, i in seen if p == pid]
        assert mine == sorted(mine)
