"""CURVE end to end: the live pipeline publishing with a server certificate; subscribers, the
recorder and replay with the right key, a wrong key and no key, over real TCP on loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import zmq.auth
from rt_helpers import StandInModel
from soundlens.realtime import Subscriber, wire
from soundlens.realtime.pipeline import LiveConfig, LivePipeline
from soundlens.realtime.publisher import PublisherConfig
from soundlens.realtime.recording import Recorder, RecorderConfig, RecordingReader, ReplayConfig, replay
from soundlens.realtime.sources import SyntheticConfig, SyntheticSource
from soundlens.realtime.worker import WorkerConfig
from soundlens.tools.main import main
from soundlens.training.synth import SceneConfig, SynthVideo

HEATMAP = wire.topic("heatmap", "cam0")


@pytest.fixture
def keys(tmp_path):
    _, secret = zmq.auth.create_certificates(str(tmp_path), "server")
    wrong, _ = zmq.auth.create_certificates(str(tmp_path), "other")
    return {"secret": secret, "public": str(tmp_path / "server.key"), "wrong": wrong}


def test_curve_end_to_end_right_key_receives_wrong_and_plain_get_nothing(keys, tmp_path):
    source = SyntheticSource(SynthVideo(30, config=SceneConfig(image_size=64)),
                             SyntheticConfig(realtime=True))
    config = LiveConfig(worker=WorkerConfig(hop=0.1),
                        publisher=PublisherConfig(address="tcp://127.0.0.1:*",
                                                  curve_secret_file=keys["secret"]))
    stop = threading.Event()
    with LivePipeline(StandInModel(), source, source, config) as pipeline:
        runner = threading.Thread(target=pipeline.run, kwargs={"stop": stop})
        runner.start()
        address = pipeline.publisher.address
        path = tmp_path / "secure.mcap"
        try:
            with Subscriber(address, curve_server_key=keys["public"]) as right, \
                    Subscriber(address, curve_server_key=keys["wrong"]) as wrong, \
                    Subscriber(address) as plain, \
                    Recorder(RecorderConfig(address=address, output=str(path),
                                            curve_server_key=keys["public"])) as rec, \
                    Recorder(RecorderConfig(address=address, output=str(tmp_path / "wrong.mcap"),
                                            curve_server_key=keys["wrong"])) as wrong_rec:
                msg = right.recv(HEATMAP, timeout=10)
                assert msg.header["version"] == [1, wire.MINOR]
                time.sleep(2.0)
                assert right.stats.received > 20
                assert wrong.stats.received == plain.stats.received == 0
                assert wrong.stats.malformed == plain.stats.malformed == 0  # nothing at all arrives
        finally:
            stop.set()
            runner.join(timeout=10)
    assert rec.stats.written > 20 and wrong_rec.stats.received == 0
    assert len(list(RecordingReader(tmp_path / "wrong.mcap"))) == 0

    # The recording replayed under the same certificate: again only the right key receives.
    with socket.socket() as probe:  # a free port for replay's own bind
        probe.bind(("127.0.0.1", 0))
        replay_address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    done = threading.Event()
    player = threading.Thread(target=lambda: replay(ReplayConfig(path=str(path), address=replay_address,
                                                                 curve_secret_file=keys["secret"],
                                                                 wait_s=0.5), done))
    with (Subscriber(replay_address, curve_server_key=keys["public"]) as right,
          Subscriber(replay_address) as plain):
        player.start()
        right.recv(HEATMAP, timeout=10)
        time.sleep(0.5)
        done.set()
        player.join(timeout=10)
    assert right.stats.received > 0 and plain.stats.received == 0


def test_clients_follow_lives_rules(keys, tmp_path, capsys):
    # Non-loopback needs CURVE or --insecure: record (connect), replay (bind) and view (connect).
    assert main(["record", "--connect", "tcp://10.255.255.1:5555", "-o", str(tmp_path / "r.mcap")]) == 2
    assert "--curve-server-key" in capsys.readouterr().err
    assert main(["view", "--connect", "tcp://10.255.255.1:5555", "--seconds", "1", "--screenshot",
                 str(tmp_path / "v.png")]) == 2
    assert "--insecure" in capsys.readouterr().err
