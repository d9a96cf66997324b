"""The fault-injection suite (`make test-reliability`; not in the default run): real processes,
real signals, a real full disk. Each test records its figures in bench_results/reliability/."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pulse_daemon import private_pulseaudio

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench_results" / "reliability"
CLI = [sys.executable, "-m", "soundlens.tools.main"]


@pytest.fixture
def report(request):
    """`report(passed=..., **figures)`: one JSON file per test, for docs/reliability.md."""
    def write(**figures):
        RESULTS.mkdir(parents=True, exist_ok=True)
        record = {"test": request.node.name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
                  **figures}
        (RESULTS / f"{request.node.name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record))
    return write


def start_live(address: str, *extra: str, seconds: float = 60.0) -> subprocess.Popen:
    """`soundlens live` on the procedural clip, shipped model, real time (25 fps), looping."""
    return subprocess.Popen([*CLI, "live", "--synthetic", "--loop", "--synthetic-seconds", str(seconds),
                             "--model", "default", "--hop", "0.1", "--device", "cpu", "--publish", address,
                             "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, sig=None, timeout: float = 20.0) -> tuple[str, str]:
    import signal

    if proc.poll() is None:
        proc.send_signal(sig or signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (root only): `tmpfs(size_kb)` -> its path, unmounted afterwards."""
    mounted = []

    def make(size_kb: int) -> Path:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): run as root")
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


class Pulse:
    """A private PulseAudio daemon: `vmic` (module-null-source: real-time silence) is the default
    input, `vsink` a null sink whose monitor is the one other source. `pactl(*args)` runs against it."""

    def __init__(self, home: Path, env: dict):
        self.home, self.env = home, env

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise AssertionError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def module_of(self, source: str) -> str:
        """Index of the module that owns `source`."""
        for line in self.pactl("list", "short", "sources").splitlines():
            fields = line.split("\t")
            if fields[1] == source:
                owner = fields[2]  # e.g. module-null-source.c
                break
        else:
            raise AssertionError(f"no source {source}")
        for line in self.pactl("list", "short", "modules").splitlines():
            index, name, args = (line.split("\t") + ["", ""])[:3]
            if owner.startswith(name) and f"source_name={source}" in args:
                return index
        raise AssertionError(f"no module for {source}")


VMIC = "module-null-source source_name=vmic rate=16000 channels=1"


@pytest.fixture
def pulse(tmp_path, monkeypatch):
    """PulseAudio for `--mic pulse` in this test and the processes it starts (PULSE_SERVER is set)."""
    import shutil

    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("pulseaudio is not installed: apt-get install pulseaudio pulseaudio-utils "
                    "libasound2-plugins")
    if os.geteuid() != 0:
        pytest.skip("the private PulseAudio daemon recipe runs as root")
    try:
        import sounddevice  # noqa: F401
    except OSError as err:
        pytest.skip(f"PortAudio missing ({err}): apt-get install libportaudio2")
    home = tmp_path / "pulse"
    home.mkdir()
    with private_pulseaudio(home, "load-module module-null-sink sink_name=vsink rate=16000 channels=1\n"
                            f"load-module {VMIC}\nset-default-sink vsink\nset-default-source vmic\n") as env:
        monkeypatch.setenv("PULSE_SERVER", env["PULSE_SERVER"])
        yield Pulse(home, env)
