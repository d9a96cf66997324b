"""`soundlens models pull` against a real HTTP server on loopback (no internet): an official-layout EZ-VSL
checkpoint with random weights is pulled under a released name, and `--model NAME` then gives the same
heatmaps as `soundlens import` of the same file. Interrupted downloads resume with HTTP Range; a web
page, a wrong hash and a truncated file each give one clear error and leave no cache entry."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import threading
import wave

import numpy as np
import pytest
import torch
from PIL import Image
from soundlens import models
from soundlens.models import pretrained
from soundlens.tools.main import main
from test_import import CASES, random_state

NAME = "ezvsl-vggss144k"
QUOTA_PAGE = (b"<!DOCTYPE html><html><head><title>Quota exceeded</title></head><body>Too many users have "
              b"viewed or downloaded this file recently.</body></html>")


class Server(http.server.ThreadingHTTPServer):
    """Serves `files[path] = (bytes, mode)`; modes: "ok"; "cut" (the first plain GET stops half-way
    and drops the connection); "html" (a quota page). Ranges `bytes=N-` get 206. Logs every GET."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.log: list[tuple[str, str | None]] = []
        self.cut_done: set[str] = set()

    def handle_error(self, request, client_address):
        pass  # a client that closes a response early (to resume with a Range request) is expected

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        srv: Server = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        if self.path not in srv.files:
            self.send_error(404)
            return
        body, mode = srv.files[self.path]
        if mode == "html":
            self._send(200, QUOTA_PAGE, "text/html; charset=utf-8")
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            self._send(206, body[start:],
                       extra={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
            return
        if mode == "cut" and self.path not in srv.cut_done:
            srv.cut_done.add(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True  # the network drops mid-file
            return
        self._send(200, body)

    def _send(self, code, body, ctype="application/octet-stream", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> bytes:
    """EZ-VSL's released layout (`{'model': ..., 'best_cIoU': ...}`, `module.` keys), random weights."""
    keys, container, *_ = CASES["ezvsl"]
    path = tmp_path_factory.mktemp("official") / "best.pth"
    torch.save(container(random_state(keys, seed=3)), path)
    return path.read_bytes()


def resumed_from(server) -> int:
    """The offset of the last Range request the server saw."""
    ranges = [r for _, r in server.log if r]
    return int(re.fullmatch(r"bytes=(\d+)-", ranges[-1])[1])


def assert_no_entry(home):
    assert not pretrained.cached_path(NAME).exists()
    assert not list((home / "models").glob("*")) if (home / "models").exists() else True


def pull(*args) -> int:
    return main(["models", "pull", NAME, "--quiet", *args])


def test_pull_then_model_name_gives_the_imported_heatmaps(server, home, official, tmp_path, capsys):
    server.files["/ez/best.pth"] = (official, "ok")
    assert main(["localize", "--model", NAME, "--image", "x.png", "--audio", "x.wav", "-o", "o.png"]) == 2
    assert f"run 'soundlens models pull {NAME}'" in capsys.readouterr().err

    assert pull("--url", server.url("/ez/best.pth")) == 0
    assert f"--model {NAME}" in capsys.readouterr().out
    cached = pretrained.cached_path(NAME)
    assert cached.is_file() and cached.parent == home / "models"
    assert not list((home / "downloads").iterdir())  # the official file is not kept once imported

    src = tmp_path / "best.pth"
    src.write_bytes(official)
    assert main(["import", "--from", "ezvsl", str(src), "-o", str(tmp_path / "imported.safetensors")]) == 0
    by_name, imported = models.load(NAME), models.load(tmp_path / "imported.safetensors")
    assert by_name.trained_on["pretrained"] == NAME
    assert by_name.trained_on["source_sha256"] == hashlib.sha256(official).hexdigest()
    torch.manual_seed(0)
    images, specs = torch.randn(2, 3, 224, 224), torch.randn(2, *by_name.audio_preset.shape)
    with torch.no_grad():
        torch.testing.assert_close(by_name.heatmap(images, specs), imported.heatmap(images, specs),
                                   rtol=0, atol=0)

    # and through a command that takes --model: the same overlay, byte for byte
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(tmp_path / "frame.png")
    with wave.open(str(tmp_path / "clip.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((rng.standard_normal(16000 * 3) * 3000).astype(np.int16).tobytes())
    for model, out in ((NAME, "a.png"), (str(tmp_path / "imported.safetensors"), "b.png")):
        assert main(["localize", "--model", model, "--image", str(tmp_path / "frame.png"), "--audio",
                     str(tmp_path / "clip.wav"), "-o", str(tmp_path / out)]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                          np.asarray(Image.open(tmp_path / "b.png")))

    # pulled once: a second pull downloads nothing; --model NAME is listed as pulled
    n = len(server.log)
    assert pull("--url", server.url("/ez/best.pth")) == 0 and len(server.log) == n
    assert "already pulled" in capsys.readouterr().out
    assert main(["models", "--pretrained"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(NAME + " "))
    assert " yes " in line


def test_an_interrupted_download_resumes_with_a_range_request(server, home, official, capsys):
    server.files["/ez/best.pth"] = (official, "cut")
    # no retries: the cut-off pull fails with one clear error and keeps its bytes ...
    assert pull("--url", server.url("/ez/best.pth"), "--retries", "0") == 2
    err = capsys.readouterr().err
    assert "interrupted" in err and "again resumes" in err and err.count("error") == 1
    assert not pretrained.cached_path(NAME).exists()
    # ... and the next pull asks only for the rest (what had arrived before the cut: at most half)
    assert pull("--url", server.url("/ez/best.pth"), "--retries", "0") == 0
    assert 0 < resumed_from(server) <= len(official) // 2
    assert models.load(NAME).trained_on["source_sha256"] == hashlib.sha256(official).hexdigest()


def test_retries_resume_within_one_pull(server, home, official):
    server.files["/ez/best.pth"] = (official, "cut")
    assert pull("--url", server.url("/ez/best.pth")) == 0
    assert 0 < resumed_from(server) <= len(official) // 2
    assert pretrained.cached_path(NAME).is_file()


def test_a_web_page_instead_of_the_checkpoint_is_one_clear_error(server, home, capsys):
    server.files["/quota"] = (b"", "html")
    assert pull("--url", server.url("/quota")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "web page, not a checkpoint" in err and "--from FILE" in err
    assert_no_entry(home)
    assert not list((home / "downloads").iterdir())


def test_a_wrong_hash_is_refused(server, home, official, monkeypatch, capsys):
    server.files["/ez/best.pth"] = (official, "ok")
    real = pretrained.releases()

    def with_hash(digest):
        rel = dataclasses.replace(real[NAME], sha256=digest)
        monkeypatch.setattr(pretrained, "releases", lambda: {**real, NAME: rel})

    with_hash("0" * 64)
    assert pull("--url", server.url("/ez/best.pth")) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and hashlib.sha256(official).hexdigest() in err and "deleted" in err
    assert_no_entry(home)
    assert not list((home / "downloads").iterdir())
    with_hash(hashlib.sha256(official).hexdigest())  # the right hash passes
    assert pull("--url", server.url("/ez/best.pth")) == 0


def test_a_truncated_file_is_refused_and_deleted(server, home, official, tmp_path, capsys):
    server.files["/ez/short.pth"] = (official[: len(official) // 3], "ok")  # a mirror's broken copy
    assert pull("--url", server.url("/ez/short.pth")) == 2
    err = capsys.readouterr().err
    assert "not a readable ezvsl checkpoint (truncated, or another file?) (the file was deleted)" in err
    assert_no_entry(home)
    assert not list((home / "downloads").iterdir())
    # the same file given with --from: refused, and the user's file is left alone
    short = tmp_path / "short.pth"
    short.write_bytes(official[: len(official) // 3])
    assert pull("--from", str(short)) == 2
    assert "truncated" in capsys.readouterr().err and short.exists()
    assert_no_entry(home)


def test_pull_from_a_local_file_and_a_missing_host(home, official, tmp_path, capsys):
    src = tmp_path / "best.pth"
    src.write_bytes(official)
    assert pull("--from", str(src)) == 0
    assert models.load(NAME).trained_on["source_url"] == str(src)
    # a host that refuses the connection (nothing listens on the port): the offline error
    with socket_free_port() as port:
        assert main(["models", "pull", "lvs-vggss", "--quiet", "--retries", "0", "--url",
                     f"http://127.0.0.1:{port}/x.pth"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach 127.0.0.1" in err and "offline" in err
    assert not pretrained.cached_path("lvs-vggss").exists()
    assert main(["models", "pull", "no-such-model"]) == 2
    assert "soundlens models --pretrained" in capsys.readouterr().err


def test_concurrent_pulls_download_once(server, home, official):
    server.files["/ez/best.pth"] = (official, "ok")
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(pull("--url", server.url("/ez/best.pth"))))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [0, 0]
    assert [p for p, _ in server.log].count("/ez/best.pth") == 1


def test_every_release_names_an_importer_and_an_official_url():
    from soundlens.models.importers import official_sources

    rels = pretrained.releases()
    assert {"ezvsl-vggss144k", "slavc-vggss144k", "lvs-flickr", "lvs-vggss", "sslalign-vggss144k",
            "sslalign-flickr144k", "ssltie-vggss144k"} <= set(rels)
    assert len([n for n in rels if n.startswith("sslalign-")]) == 6
    for rel in rels.values():
        assert rel.importer in official_sources() and rel.url.startswith("https://") and rel.readme
        assert rel.licence and rel.train_data
        assert ("/folders/" in rel.url) == bool(rel.file)  # a Drive folder names the file inside it
        assert rel.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", rel.sha256)
    assert rels["ezvsl-vggss144k"].reported["VGG-SS"] == {"cIoU": 38.85, "AUC": 39.54}


def test_cache_location_follows_xdg_and_soundlens_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SOUNDLENS_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cached_path(NAME) == tmp_path / "xdg" / "soundlens" / "models" / f"{NAME}.safetensors"
    monkeypatch.setenv("SOUNDLENS_HOME", str(tmp_path / "sl"))
    assert pretrained.home() == tmp_path / "sl"


class socket_free_port:
    """A loopback port nothing listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc):
        return False
