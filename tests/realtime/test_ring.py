"""Ring buffers: window semantics, and no torn reads with concurrent producers and consumers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from soundlens.realtime.clock import FixedClock, SampleClock
from soundlens.realtime.ring import AudioRing, FrameRing


def test_audio_ring_windows_by_index_and_time():
    ring = AudioRing(1000, 100, FixedClock(100, t0_ns=5_000_000_000))
    ring.write(np.arange(300, dtype=np.float32))
    np.testing.assert_array_equal(ring.read(250, 50), np.arange(250, 300))
    assert ring.read(250, 51) is None  # one sample in the future
    ring.write(np.arange(300, 1250, dtype=np.float32))  # wraps around
    assert (ring.start, ring.end) == (250, 1250)
    assert ring.read(249, 10) is None  # older than the capacity
    np.testing.assert_array_equal(ring.read(250, 1000), np.arange(250, 1250))
    first, latest = ring.read_latest(20)
    assert first == 1230 and latest[-1] == 1249
    # by time: sample n is at t0 + n / rate
    end = ring.clock.index_at(5_000_000_000 + 12_000_000_000)
    assert end == 1200
    np.testing.assert_array_equal(ring.read(end - 10, 10), np.arange(1190, 1200))
    with pytest.raises(ValueError, match="larger"):
        ring.read(0, 1001)


def test_audio_ring_places_blocks_by_index():
    ring = AudioRing(100, 10)
    ring.write(np.ones(5, np.float32), index=3)  # a hole before it becomes silence
    np.testing.assert_array_equal(ring.read(0, 8), [0, 0, 0, 1, 1, 1, 1, 1])
    assert ring.gap_samples == 3
    ring.write(np.full(4, 2, np.float32), index=6)  # overlaps two written samples: they stay
    np.testing.assert_array_equal(ring.read(0, 10), [0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    assert ring.late_samples == 2
    ring.write(np.arange(250, dtype=np.float32).reshape(-1, 1))  # [n, 1] and bigger than the ring
    assert ring.end == 260 and ring.read(160, 100)[-1] == 249


def test_audio_ring_one_writer_many_readers_never_tear():
    """Each sample holds its own absolute index, so any torn or stale read shows."""
    ring = AudioRing(4096, 16000)
    total = 400_000
    stop = threading.Event()
    failures, reads = [], [0]

    def writer():
        # Keeps writing until the readers have read enough (a loaded machine may schedule them
        # late), at most 20 s.
        rng = np.random.default_rng(1)
        n, deadline = 0, time.monotonic() + 20
        while n < total or (reads[0] <= 100 and time.monotonic() < deadline):
            size = int(rng.integers(1, 700))
            ring.write(np.arange(n, n + size, dtype=np.float32))
            n += size
        stop.set()

    def reader(seed):
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            count = int(rng.integers(1, 4096))
            first = ring.end - count - int(rng.integers(0, 3000))
            out = ring.read(first, count) if first >= 0 else None
            if out is None:
                continue
            reads[0] += 1
            if not np.array_equal(out, np.arange(first, first + count, dtype=np.float32)):
                failures.append((first, count))

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,))
                                                   for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not failures
    assert reads[0] > 100
    assert ring.end >= total


def test_frame_ring_keeps_newest_with_concurrent_producers_and_consumers():
    ring = FrameRing(capacity=3)
    per_producer = 300
    seen: list[list[int]] = [[], []]
    errors = []

    def producer(tag):
        for i in range(per_producer):
            ring.put(np.full((4, 4, 3), tag, np.uint8), t_ns=time.monotonic_ns())
            if i % 50 == 0:
                time.sleep(0.001)

    def consumer(k):
        last = -1
        while last < 2 * per_producer - 1:
            frame = ring.wait_newer(last, timeout=2.0)
            if frame is None:
                errors.append("timed out")
                return
            if frame.index <= last or len(ring.snapshot()) > ring.capacity:
                errors.append((last, frame.index))
            seen[k].append(frame.index)
            last = frame.index

    threads = [threading.Thread(target=consumer, args=(k,)) for k in range(2)]
    threads += [threading.Thread(target=producer, args=(tag,)) for tag in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert ring.count == 2 * per_producer
    assert [f.index for f in ring.snapshot()] == [597, 598, 599]
    assert all(s[-1] == 599 for s in seen)
    newest = ring.newest()
    assert ring.at_or_before(newest.t_ns) is newest
    assert ring.at_or_before(0) is ring.snapshot()[0]  # older than everything kept: the oldest


def test_frame_ring_close_wakes_waiters():
    ring = FrameRing(2)
    result = []
    waiter = threading.Thread(target=lambda: result.append(ring.wait_newer(-1, timeout=10)))
    waiter.start()
    time.sleep(0.05)
    ring.close()
    waiter.join(timeout=2)
    assert result == [None] and not waiter.is_alive()


def test_sample_clock_fits_rate_and_offset_through_jitter():
    rate = 16000
    clock = SampleClock(rate)
    assert clock.time_ns(rate) - clock.time_ns(0) == 1_000_000_000  # nominal before any data
    rng = np.random.default_rng(0)
    true_ns_per_sample = 1e9 / (rate * 1.0005)  # a sound card 0.05 % fast
    t0 = 7_000_000_000
    for block in range(1, 500):  # 10 s of 320-sample callbacks with up to 3 ms scheduling jitter
        end = block * 320
        clock.observe(end, int(t0 + end * true_ns_per_sample + rng.uniform(0, 3e6)))
    n_ref, t_ref, slope = clock.fit()
    assert slope == pytest.approx(true_ns_per_sample, rel=2e-4)
    end = 499 * 320
    assert abs(clock.time_ns(end) - (t0 + end * true_ns_per_sample)) < 3e6
    assert clock.index_at(clock.time_ns(12345)) == 12345
