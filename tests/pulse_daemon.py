"""A private PulseAudio daemon for the tests that record from a virtual microphone (tests/realtime,
tests/reliability): its own socket and runtime folders under `home`, stopped when the context ends."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest


@contextlib.contextmanager
def private_pulseaudio(home: Path, modules: str):
    """Start `pulseaudio` with a default.pa of its native socket plus `modules` (default.pa lines) and
    wait until `pactl info` answers. Yields its environment (HOME, runtime paths, PULSE_SERVER) for
    pactl and the processes a test starts."""
    socket = home / "native"
    (home / "default.pa").write_text(
        f"load-module module-native-protocol-unix socket={socket} auth-anonymous=1\n{modules}")
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home),
           "PULSE_RUNTIME_PATH": str(home / "run"), "PULSE_STATE_PATH": str(home / "state"),
           "PULSE_SERVER": f"unix:{socket}"}
    log = (home / "daemon.log").open("w")
    daemon = subprocess.Popen(["pulseaudio", "-n", "-F", str(home / "default.pa"), "--daemonize=no",
                               "--use-pid-file=no", "--exit-idle-time=-1", "--disallow-exit",
                               "--log-target=stderr"],
                              env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                daemon.kill()
                pytest.fail(f"PulseAudio did not start: {(home / 'daemon.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield env
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
