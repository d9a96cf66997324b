"""The trainer through its real entry point `soundlens.training.main.main(argv)` (style.md §2: open_clip's
test_training_simple), plus the config layering and the gathered-negatives losses.

Budgets are tiny (lite encoder, 112 px procedural scenes, a few steps): these check plumbing,
checkpoints and resume, not accuracy (tests/models/test_learning.py does that).
"""

from __future__ import annotations

import json

import pytest
import torch
from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.training.main import main, param_digest

TINY = ["--method", "ezvsl", "--encoder", "lite", "--data", "procedural:24,size=112", "--batch-size", "8",
        "--val-pairs", "8", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread():
    # The test machine's cores are shared: one thread per process is several times faster there.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _events(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_main_trains_checkpoints_and_resumes_exactly(tmp_path, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*TINY, "--epochs", "2", "--out", str(straight)]) == 0
    for name in ("latest.safetensors", "best.safetensors", "resume.safetensors", "log.jsonl", "config.json"):
        assert (straight / name).is_file(), name
    events = _events(straight)
    assert [e["event"] for e in events if e["event"] != "step"] == ["start", "epoch", "epoch"]
    epoch = [e for e in events if e["event"] == "epoch"][-1]
    assert 0 <= epoch["val"]["cIoU"] <= 1 and 0 <= epoch["val"]["hit_rate"] <= 1 and epoch["val"]["n"] > 0
    assert epoch["train"]["steps"] == 3 and epoch["train"]["loss"] > 0
    latest = models.load(straight / "latest.safetensors")
    assert latest.method == "ezvsl" and latest.config.encoder == "lite"
    assert latest.trained_on["epochs_done"] == 2 and latest.trained_on["data"]["n"] == 24
    assert "latest" in capsys.readouterr().out

    # The same run interrupted after epoch 0, then resumed: bit-identical weights.
    assert main([*TINY, "--epochs", "1", "--out", str(resumed)]) == 0
    assert main([*TINY, "--epochs", "2", "--out", str(resumed)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*TINY, "--epochs", "2", "--out", str(resumed), "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert [e["epoch"] for e in _events(resumed) if e["event"] == "epoch"] == [0, 1]
    again = models.load(resumed / "latest.safetensors")
    assert param_digest(again) == param_digest(latest)
    for (name, a), b in zip(latest.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_resume_refuses_other_method_options(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": {"tau": 0.05}}))
    assert main([*TINY, "--epochs", "2", "--out", str(out), "--resume", "--config", str(cfg)]) == 2
    assert "other method options (tau" in capsys.readouterr().err


def test_soundlens_train_on_real_frames_of_mixed_sizes(fixtures_dir, tmp_path):
    """A prepared folder (VGG-SS clips, frames 320x240 to 1280x720, 10 s wavs) trains and validates."""
    from soundlens.tools.main import main as cli

    mini = fixtures_dir / "vggss_mini"
    out = tmp_path / "run"
    assert cli(["train", "--method", "lvs", "--encoder", "lite", "--data", str(mini), "--val", str(mini),
                "--epochs", "1", "--batch-size", "3", "--protocol", "lvs", "--out", str(out),
                "--no-progress"]) == 0
    epoch = [e for e in _events(out) if e["event"] == "epoch"][0]
    assert epoch["train"]["steps"] == 2 and epoch["val"]["n"] == 7 and epoch["val"]["protocol"] == "lvs"
    assert models.load(out / "best.safetensors").method == "lvs"


def test_config_layers_defaults_recipe_file_flags(tmp_path):
    from soundlens.training.params import build_config

    cfg = build_config({"method": "ezvsl"})
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.optimizer) == (20, 128, 1e-4,
                                                                                           "adam")
    assert cfg.data == "procedural:2000" and cfg.out is None and cfg.out_dir.as_posix() == "runs/ezvsl"
    if "jsa" in models.available():  # official_repos.md §2.8: AdamW 5e-5, wd 0.01, batch 256
        jsa = build_config({"method": "jsa"}).train
        assert (jsa.optimizer, jsa.lr, jsa.weight_decay, jsa.batch_size) == ("adamw", 5e-5, 0.01, 256)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 3, "lr": 1e-3, "model": {"tau": 0.05},
                                "train": {"grad_clip": 1.0}}))
    cfg = build_config({"method": "ezvsl", "lr": 2e-4, "epochs": None, "encoder": "lite"}, path)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.grad_clip) == (3, 2e-4, 1.0)  # flag > file > default
    assert cfg.method_options() == {"tau": 0.05, "encoder": "lite"}
    with pytest.raises(SoundLensError, match="unknown option"):
        build_config({"method": "ezvsl"}, _write(tmp_path / "bad.json", {"epoch": 3}))
    with pytest.raises(SoundLensError, match="unknown method 'nope'"):
        build_config({"method": "nope"})
    with pytest.raises(SoundLensError, match="batch-size"):
        build_config({"method": "ezvsl", "batch_size": 0})


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("argv, message", [
    (["--data", "procedural:abc"], "N must be an integer"),
    (["--data", "/no/such/dir"], "does not exist"),
    (["--data", "procedural:4"], "fewer than --batch-size"),
    (["--data", "procedural:16,colour=red"], "unknown option"),
])
def test_bad_input_is_one_line_error(tmp_path, capsys, argv, message):
    assert main(["--method", "ezvsl", "--encoder", "lite", "--batch-size", "8", "--out", str(tmp_path / "o"),
                 *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("method", ["ezvsl", "lvs"])
def test_gathered_loss_is_the_method_loss_on_one_process(method):
    """With one process the gathered negatives are the local batch: same value, same gradients."""
    from soundlens.training.data import collate_clips
    from soundlens.training.engine import model_inputs
    from soundlens.training.synth import SceneConfig, SynthPairs

    torch.manual_seed(0)
    model = models.create(method, encoder="lite").eval()  # eval: no dropout/BN-stat randomness
    pairs = SynthPairs(6, config=SceneConfig(image_size=112))
    batch = model_inputs(model, collate_clips([pairs[i] for i in range(6)]), train=False)
    own = model.loss(batch)
    own["loss"].backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    gathered = model.loss(batch, gather=lambda x: x)
    gathered["loss"].backward()
    assert set(gathered) == set(own)
    torch.testing.assert_close(gathered["loss"], own["loss"], rtol=0, atol=0)
    for n, p in model.named_parameters():
        if n in grads:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-6, atol=1e-8)


def test_gather_negatives_on_an_unsupported_method_says_why():
    from soundlens.training.distributed import check_gatherable

    if "slavc" not in models.available():
        pytest.skip("slavc is not registered")
    with pytest.raises(SoundLensError,
                       match="slavc loss cannot use gathered negatives: its contrastive targets"):
        check_gatherable(models.create("slavc", encoder="lite"))


def test_deterministic_runs_are_bit_identical_and_record_their_numerics(tmp_path):
    """--deterministic --seed N twice on one machine: the same weights to the bit, also when the
    second run is interrupted after epoch 0 and resumed; another seed gives other weights. The seed,
    torch version, CPU capability and threads are in the log's start record and the checkpoint."""
    run = [*TINY, "--method", "lvs", "--epochs", "2", "--deterministic"]
    a, b, c, other = (tmp_path / n for n in ("a", "b", "c", "other"))
    assert main([*run, "--seed", "5", "--out", str(a)]) == 0
    assert main([*run, "--seed", "5", "--out", str(b)]) == 0
    assert main([*run[:-3], "--epochs", "1", "--deterministic", "--seed", "5", "--out", str(c)]) == 0
    assert main([*run, "--seed", "5", "--out", str(c), "--resume"]) == 0
    assert main([*run, "--seed", "6", "--out", str(other)]) == 0
    first = models.load(a / "latest.safetensors")
    for folder in (b, c):
        again = models.load(folder / "latest.safetensors")
        for (name, x), y in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
            assert torch.equal(x, y), f"{folder.name}: {name} differs"
    assert param_digest(models.load(other / "latest.safetensors")) != param_digest(first)
    numerics = first.trained_on["numerics"]
    assert numerics["seed"] == 5 and numerics["deterministic"] is True
    assert (numerics["torch"] == torch.__version__
            and numerics["cpu_capability"] == torch.backends.cpu.get_cpu_capability())
    assert numerics["threads"] == torch.get_num_threads()
    start = _events(a)[0]
    assert start["event"] == "start" and start["config"]["numerics"]["seed"] == 5
    assert start["config"]["train"]["deterministic"] is True
