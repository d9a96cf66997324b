"""Publisher and Subscriber over real loopback ZeroMQ sockets: malformed input, gaps, restarts, CURVE."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq
import zmq.auth
from soundlens.models.errors import SoundLensError
from soundlens.realtime import Publisher, PublisherConfig, Subscriber, is_loopback, wire

ANY_PORT = "tcp://127.0.0.1:*"


def status_header(**extra) -> dict:
    return {"stamp_ns": time.time_ns(), "mono_ns": {"publish": time.monotonic_ns()}, "stream": "t", **extra}


def wait_until(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def join(sub: Subscriber, send, topic: str) -> None:
    """Beat the slow joiner: send until the subscriber got one."""
    assert wait_until(lambda: [send(), sub.latest(topic)][1] is not None), "subscription never arrived"


def raw_message(session: str, seq: int) -> list:
    return wire.encode("status", None, status_header(session=session, seq=seq))


def test_malformed_and_truncated_messages_are_counted_and_skipped():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(ANY_PORT)
    address = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        with Subscriber(address) as sub:
            join(sub, lambda: pub.send_multipart(raw_message("aa", 0)), "soundlens.v1.status")
            good = [bytes(p) for p in wire.encode("heatmap", "cam0", {
                "session": "aa", "seq": 0, "stream": "cam0", "inference": 0, "stamp_ns": 1,
                "mono_ns": {"capture": 1, "infer_start": 2, "infer_end": 3, "publish": 4},
                "frame": {"index": 0, "width": 8, "height": 8},
                "audio": {"sample_rate": 16000, "first_sample": 0, "num_samples": 10},
                "model": {"id": "m"}, "peaks": []}, {"heatmap": np.ones((7, 7), np.float32)})]
            bad = [
                [b"soundlens.v1.heatmap.cam0"],  # header missing
                [b"soundlens.v1.heatmap.cam0", b"\x00\x01garbage"],  # not JSON
                [b"soundlens.v1.heatmap.cam0", b'{"schema": "soundlens.heatmap"}'],  # fields missing
                [good[0], good[1], good[2][:100]],  # truncated buffer
                [good[0], good[1]],  # buffer frame missing
                [good[0], good[1].replace(b'"version":[1,', b'"version":[9,'), good[2]],  # unknown major
                [b"soundlens.v1.heatmap.cam0", b"[]", b""],  # header not an object
                [b"soundlens.v1.heatmap.\xff", good[1], good[2]],  # topic not ASCII
            ]
            for parts in bad:
                pub.send_multipart(parts)
            pub.send_multipart(good)
            msg = sub.recv("soundlens.v1.heatmap.cam0", timeout=5)
            np.testing.assert_array_equal(msg.arrays["heatmap"], np.ones((7, 7)))
            assert wait_until(lambda: sub.stats.malformed == len(bad))
            assert len(sub.errors) == len(bad)
            assert any("truncated" in e for e in sub.errors) and any("major" in e for e in sub.errors)
            # still alive and receiving after all that
            pub.send_multipart(raw_message("aa", 999))
            assert wait_until(lambda: sub.latest("soundlens.v1.status").seq == 999)
    finally:
        pub.close(0)
        ctx.term()


def test_gaps_and_publisher_restarts_are_reported():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(ANY_PORT)
    address = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        with Subscriber(address) as sub:
            join(sub, lambda: pub.send_multipart(raw_message("s1", 0)), "soundlens.v1.status")
            base = sub.latest("soundlens.v1.status").seq
            for seq in (base + 1, base + 2, base + 6, base + 7):  # 3 lost between +2 and +6
                pub.send_multipart(raw_message("s1", seq))
            pub.send_multipart(raw_message("s2", 0))  # a new session: restart, not a gap
            pub.send_multipart(raw_message("s2", 1))
            assert wait_until(lambda: sub.latest("soundlens.v1.status").header["session"] == "s2"
                              and sub.latest("soundlens.v1.status").seq == 1)
            assert (sub.stats.gaps, sub.stats.lost) == (1, 3)  # the joining pings repeat seq 0: no gap
            assert sub.stats.restarts == 1 and sub.sessions[-2:] == ["s1", "s2"]
            assert sub.stats.malformed == 0
    finally:
        pub.close(0)
        ctx.term()


def test_publisher_numbers_messages_and_recv_gives_newest_once():
    with Publisher(PublisherConfig(address=ANY_PORT)) as pub, Subscriber(pub.address) as sub:
        join(sub, lambda: pub.publish("status", None, status_header()), "soundlens.v1.status")
        for i in range(5):
            pub.publish("meta", "cam0", {"n": i})
        assert wait_until(lambda: (m := sub.latest("soundlens.v1.meta.cam0")) is not None
                          and m.header["n"] == 4)
        msg = sub.recv("soundlens.v1.meta.cam0", timeout=1)
        assert msg.header["n"] == 4 and msg.seq == 4 and msg.session == pub.session
        assert msg.header["mono_ns"]["publish"] <= time.monotonic_ns()
        with pytest.raises(TimeoutError):
            sub.recv("soundlens.v1.meta.cam0", timeout=0.2)  # already handed out
        assert sub.stats.gaps == 0


def test_publish_never_blocks_and_counts_what_it_drops():
    with Publisher(PublisherConfig(address=ANY_PORT, queue=4)) as pub:
        big = np.zeros((256, 256), np.float32)
        t0 = time.perf_counter()
        for i in range(2000):
            pub.publish("meta", "cam0", {"i": i}, {"x": big})
        assert time.perf_counter() - t0 < 1.0  # no subscriber, a tiny queue: still instant
        assert wait_until(lambda: pub.sent + pub.dropped == 2000)
        assert pub.dropped > 0


def test_curve_encrypts_and_authenticates(tmp_path):
    _, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    public_file = tmp_path / "server.key"
    config = PublisherConfig(address=ANY_PORT, curve_secret_file=secret_file)
    with Publisher(config) as pub:
        with Subscriber(pub.address, curve_server_key=public_file) as good, Subscriber(pub.address) as plain:
            join(good, lambda: pub.publish("status", None, status_header()), "soundlens.v1.status")
            time.sleep(0.2)
            assert plain.latest("soundlens.v1.status") is None  # no key: the handshake never completes
    with pytest.raises(SoundLensError, match="not found"):
        Publisher(PublisherConfig(address=ANY_PORT, curve_secret_file=str(tmp_path / "missing"))).start()


def test_non_loopback_needs_curve_or_insecure():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1")
    assert is_loopback("tcp://[::1]:5555") and is_loopback("ipc:///tmp/x.sock") and is_loopback("inproc://a")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://eth0:5555") and not is_loopback("tcp://192.168.1.5:5555")
    with pytest.raises(SoundLensError, match="--insecure"):
        Publisher(PublisherConfig(address="tcp://0.0.0.0:*")).start()
    with pytest.warns(UserWarning, match="unencrypted"):
        Publisher(PublisherConfig(address="tcp://0.0.0.0:*", insecure=True)).start().close()


def test_bind_conflict_is_a_clear_error():
    with Publisher(PublisherConfig(address=ANY_PORT)) as first:
        with pytest.raises(SoundLensError, match="cannot bind .* pick another --publish"):
            Publisher(PublisherConfig(address=first.address)).start()


def test_ipc_transport(tmp_path):
    address = f"ipc://{tmp_path}/soundlens.sock"
    with Publisher(PublisherConfig(address=address)) as pub, Subscriber(address) as sub:
        join(sub, lambda: pub.publish("status", None, status_header()), "soundlens.v1.status")
