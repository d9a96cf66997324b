"""`soundlens train --image-weights imagenet|PATH` against a real HTTP server on loopback (no internet):
a torchvision-layout ResNet-18 file with random weights, named as torchvision names its files
(`resnet18-<sha256 prefix>.pth`), is served in place of torchvision's through $SOUNDLENS_IMAGENET_URL,
downloaded once into the cache and loaded into the image trunk; a wrong hash, an unreachable host and the
lite trunk each give one clear error."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading

import pytest
import torch
import torchvision
from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.models.imagenet import URL_ENV, image_weights_path
from soundlens.training.main import _method_options, main
from soundlens.training.params import build_config

# Smallest ResNet run: 8 procedural pairs, one step, the lite preset's 112 px images (set in --config:
# config-file model options and --image-weights travel together).
TINY = ["--method", "ezvsl", "--encoder", "resnet18", "--data", "procedural:8,size=112", "--batch-size", "8",
        "--val-pairs", "4", "--epochs", "1", "--lr", "1e-12", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()  # the test machine's cores are shared (tests/training/test_train.py)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    gets: list[str]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        self.server.gets.append(self.path)  # logged once per request; keeps the output clean


@pytest.fixture()
def served(tmp_path):
    """(server, folder): files written into the folder are served by name."""
    folder = tmp_path / "served"
    folder.mkdir()
    srv = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    srv.gets = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, folder
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def resnet18_bytes(tmp_path_factory) -> bytes:
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path.read_bytes()


def torchvision_name(body: bytes) -> str:
    return f"resnet18-{hashlib.sha256(body).hexdigest()[:8]}.pth"


def test_imagenet_is_downloaded_once_and_initialises_the_trained_trunk(served, home, resnet18_bytes, tmp_path,
                                                                        monkeypatch, capsys):
    server, folder = served
    name = torchvision_name(resnet18_bytes)
    (folder / name).write_bytes(resnet18_bytes)
    monkeypatch.setenv(URL_ENV, server.url(name))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"image_preset": "lite"}}))

    out = tmp_path / "run"
    assert main([*TINY, "--config", str(config), "--image-weights", "imagenet", "--out", str(out)]) == 0
    cached = home / "imagenet" / name
    assert cached.read_bytes() == resnet18_bytes and server.gets == [f"/{name}"]
    assert not list((home / "downloads").iterdir())
    run = json.loads((out / "config.json").read_text())
    assert run["image_weights"] == "imagenet" and run["model_config"]["pretrained_image"] == str(cached)

    # The trained trunk started from the served weights (lr 1e-12: one step moves nothing visible).
    served_state = torch.load(cached, weights_only=True)
    trained = models.load(out / "latest.safetensors")
    convs = {k: v for k, v in trained.imgnet.state_dict().items() if k.endswith("conv1.weight")}
    assert len(convs) == 9  # the stem and both convs' first of every block
    for key, value in convs.items():
        torch.testing.assert_close(value, served_state[key], rtol=0, atol=1e-6)

    # Later runs take the cached file (no request); the config file takes the same value.
    config.write_text(json.dumps({"image_weights": "imagenet", "model": {"image_preset": "lite"}}))
    again = build_config({"method": "ezvsl", "encoder": "resnet18_lvs"}, config)
    assert _method_options(again)["pretrained_image"] == str(cached) and server.gets == [f"/{name}"]
    # A trained checkpoint records the file it started from but loads without it.
    cached.unlink()
    assert models.load(out / "latest.safetensors").config.pretrained_image == str(cached)
    capsys.readouterr()


def test_a_wrong_hash_is_one_clear_error_and_leaves_no_entry(served, home, resnet18_bytes):
    server, folder = served
    (folder / "resnet18-00000000.pth").write_bytes(resnet18_bytes)
    with pytest.raises(SoundLensError) as err:
        image_weights_path("imagenet", "resnet18", url=server.url("resnet18-00000000.pth"), quiet=True)
    assert "does not start with 00000000" in str(err.value) and "--image-weights PATH" in str(err.value)
    assert not (home / "imagenet").exists()
    assert not list((home / "downloads").iterdir())


def test_offline_is_one_clear_error(home):
    with pytest.raises(SoundLensError) as err:  # port 9 (discard) on loopback: nothing listens
        image_weights_path("imagenet", "resnet18_lvs", url="http://127.0.0.1:9/resnet18-f37072fd.pth",
                           quiet=True)
    assert "offline" in str(err.value) and "by hand and pass the file: --image-weights PATH" in str(err.value)
    assert not (home / "imagenet").exists()


def test_a_name_without_a_hash_is_refused(home):
    with pytest.raises(SoundLensError, match="sha256 prefix"):
        image_weights_path("imagenet", "resnet18", url="http://127.0.0.1:9/weights.pth")


def test_lite_has_no_imagenet_weights(tmp_path, capsys):
    assert main([*TINY, "--encoder", "lite", "--image-weights", "imagenet", "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no ImageNet weights exist for the lite trunk" in err and "--encoder resnet18" in err


def test_a_local_file_is_used_as_it_is_and_efficientnet_keeps_its_own(home, resnet18_bytes, tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(resnet18_bytes)
    assert image_weights_path(str(path), "resnet18") == str(path)
    model = models.create("ezvsl", encoder="resnet18",
                          pretrained_image=image_weights_path(str(path), "resnet18"))
    state = torch.load(path, weights_only=True)
    for key, value in model.imgnet.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert image_weights_path("imagenet", "efficientnet_lite0") is None and not home.exists()
    with pytest.raises(SoundLensError, match="no such file"):
        image_weights_path(str(tmp_path / "missing.pth"), "resnet18")
