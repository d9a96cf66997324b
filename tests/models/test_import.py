"""`soundlens import`: official checkpoints, laid out as the notes' key tables say, become SoundLens
checkpoints whose heatmaps equal those of the same weights loaded by hand; mismatches are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from soundlens import models
from soundlens.tools.main import main

# --- official layouts, restated from official_repos.md (§2.11 R18, §2.1-2.5, §2.8 tables) --------


def r18(prefix: str, in_ch: int, stems: tuple = (), fc: bool = False) -> dict:
    """§2.11: torchvision ResNet-18 keys + shapes under `prefix`; extra `stems` (name, in_ch)."""
    keys = {f"{prefix}conv1.weight": (64, in_ch, 7, 7)}
    for name, ch in stems:
        keys[f"{prefix}{name}.weight"] = (64, ch, 7, 7)

    def bn(p, c):
        keys.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,),
                     f"{p}.running_var": (c,), f"{p}.num_batches_tracked": ()})

    bn(f"{prefix}bn1", 64)
    for layer, (cin, cout) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
        for block in (0, 1):
            p = f"{prefix}layer{layer}.{block}"
            keys[f"{p}.conv1.weight"] = (cout, cin if block == 0 else cout, 3, 3)
            bn(f"{p}.bn1", cout)
            keys[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            bn(f"{p}.bn2", cout)
            if block == 0 and layer > 1:
                keys[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
    if fc:
        keys.update({f"{prefix}fc.weight": (1000, 512), f"{prefix}fc.bias": (1000,)})
    return keys


def conv_head(name, c_out=512, c_in=512):
    return {f"{name}.weight": (c_out, c_in, 1, 1), f"{name}.bias": (c_out,)}


def linear(name, c_out=512, c_in=512):
    return {f"{name}.weight": (c_out, c_in), f"{name}.bias": (c_out,)}


def ezvsl_keys(p=""):
    return {**r18(f"{p}imgnet.", 3), **conv_head(f"{p}img_proj"), **r18(f"{p}audnet.", 1),
            **linear(f"{p}aud_proj")}


def slavc_keys(p=""):
    keys = {}
    for m in ("", "momentum_"):
        keys.update({**r18(f"{p}{m}imgnet.", 3), **r18(f"{p}{m}audnet.", 1)})
        for i in (1, 2):
            keys.update({**conv_head(f"{p}{m}img_proj{i}"), **linear(f"{p}{m}aud_proj{i}")})
    return keys


def avenet_keys(p=""):  # §2.3: three stems and an fc per branch
    stems = (("conv1_a", 1), ("conv1_flow", 6))
    return {**r18(f"{p}imgnet.", 3, stems, fc=True), **r18(f"{p}audnet.", 3, stems, fc=True)}


def ssltie_keys():  # §2.5: + vision_fc1, conv3, norm3
    keys = {**avenet_keys(), **conv_head("vision_fc1", 512, 1024), **conv_head("conv3", 1, 1)}
    keys.update({"norm3.weight": (1,), "norm3.bias": (1,), "norm3.running_mean": (1,),
                 "norm3.running_var": (1,), "norm3.num_batches_tracked": ()})
    return keys


def jsa_keys(p="module."):  # §2.8 key table
    keys = {**r18(f"{p}imgnet.", 3), **conv_head(f"{p}imgnet.proj")}
    audio = r18(f"{p}audnet.", 1)
    audio[f"{p}audnet.conv1_1.weight"] = audio.pop(f"{p}audnet.conv1.weight")
    keys.update({**audio, **conv_head(f"{p}audnet.proj.0")})
    s = f"{p}slot_attn."
    keys.update({f"{s}slots": (1, 2, 512), f"{s}mask_token_img": (1, 1, 512),
                 f"{s}mask_token_aud": (1, 1, 512)})
    for m in ("img", "aud"):
        for n in ("q", "k", "v"):
            keys.update(linear(f"{s}{m}_to_{n}"))
        keys.update({f"{s}{m}_gru.weight_ih": (1536, 512), f"{s}{m}_gru.weight_hh": (1536, 512),
                     f"{s}{m}_gru.bias_ih": (1536,), f"{s}{m}_gru.bias_hh": (1536,)})
        keys.update({**linear(f"{s}{m}_mlp.0", 1024, 512), **linear(f"{s}{m}_mlp.2", 512, 1024)})
        for n in ("input", "slots", "pre_ff"):
            keys.update({f"{s}{m}_norm_{n}.weight": (512,), f"{s}{m}_norm_{n}.bias": (512,)})
    for m, (rows, cols) in (("img", (7, 7)), ("aud", (1, 16))):
        d = f"{p}{m}_decoder."
        keys.update({f"{d}pos_emb.row_embed.weight": (rows, 256),
                     f"{d}pos_emb.col_embed.weight": (cols, 256)})
        for i in (0, 2, 4):
            keys.update(linear(f"{d}mlp.{i}"))
        keys.update(linear(f"{d}mlp.6", 513, 512))
    return keys


def random_state(keys: dict, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1000)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = 0.05 * torch.randn(shape, generator=g)
    return out


# source -> (official keys, container builder, SoundLens method, config, renames official -> ours)
CASES = {
    "ezvsl": (ezvsl_keys("module."), lambda sd: {"model": sd, "optimizer": {}, "epoch": 19,
                                                  "best_cIoU": np.float64(0.81), "best_Auc": np.float64(0.6)},
              "ezvsl", {"audio_preset": "ezvsl", "image_preset": "ezvsl"}, [("module.", "")]),
    "slavc": (slavc_keys("module."),
              lambda sd: {"model": sd, "optimizer": {}, "epoch": 19, "best_Precision": 0.8}, "slavc",
              {"audio_preset": "ezvsl", "image_preset": "ezvsl"}, [("module.", "")]),
    "lvs": (avenet_keys("module."), lambda sd: {"model_state_dict": sd}, "lvs",
            {"audio_preset": "lvs", "image_preset": "lvs"},
            [("module.imgnet.conv1_a.", None), ("module.imgnet.conv1_flow.", None),
             ("module.imgnet.fc.", None), ("module.audnet.conv1.", None), ("module.audnet.conv1_flow.", None),
             ("module.audnet.fc.", None), ("module.audnet.conv1_a.", "audnet.conv1."), ("module.", "")]),
    "sslalign": (avenet_keys(), lambda sd: {"model_state_dict": sd, "epoch": 10}, "sslalign",
                 {"audio_preset": "sslalign", "image_preset": "sslalign", "projection": False},
                 [("imgnet.conv1_a.", None), ("imgnet.conv1_flow.", None), ("imgnet.fc.", None),
                  ("audnet.conv1.", None), ("audnet.conv1_flow.", None), ("audnet.fc.", None),
                  ("audnet.conv1_a.", "audnet.conv1.")]),
    "ssltie": (ssltie_keys(), lambda sd: {"epoch": 99, "state_dict": sd, "best_miou": 0.4, "iteration": 7},
               "lvs", {"audio_preset": "ssltie", "image_preset": "lvs"},
               [("vision_fc1.", None), ("conv3.", None), ("norm3.", None),
                ("imgnet.conv1_a.", None), ("imgnet.conv1_flow.", None), ("imgnet.fc.", None),
                ("audnet.conv1.", None), ("audnet.conv1_flow.", None), ("audnet.fc.", None),
                ("audnet.conv1_a.", "audnet.conv1.")]),
    "jsa": (jsa_keys(), lambda sd: {"model": sd, "optimizer": {}, "epoch": 3}, "jsa",
            {"audio_preset": "jsa", "image_preset": "jsa"},
            [("module.audnet.conv1_1.", "audnet.conv1."), ("module.", "")]),
}


def by_hand(official: dict, renames: list) -> dict:
    """The documented mapping, applied by the test itself: first matching prefix wins; None drops."""
    out = {}
    for key, value in official.items():
        for old, new in renames:
            if key.startswith(old):
                if new is not None:
                    out[new + key[len(old):]] = value
                break
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("source", list(CASES))
def test_official_checkpoint_round_trip(source, tmp_path, capsys):
    keys, container, method, config, renames = CASES[source]
    official = random_state(keys)
    src = tmp_path / f"{source}.pth"
    torch.save(container(official), src)
    out = tmp_path / f"{source}.safetensors"
    assert main(["import", "--from", source, str(src), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out

    loaded = models.load(out)
    assert loaded.method == method
    for name, value in config.items():
        assert getattr(loaded.config, name) == value
    assert loaded.trained_on["imported_from"] == source and loaded.trained_on["missing"] == []
    # The same weights put in by hand with the documented mapping: strict, so nothing is left out.
    ref = models.create(method, **config)
    ref.load_state_dict(by_hand(official, renames), strict=True)
    ref.eval()
    torch.manual_seed(1)
    images = torch.randn(1, 3, 224, 224)
    specs = torch.randn(1, *loaded.audio_preset.shape)
    with torch.no_grad():
        torch.testing.assert_close(loaded.heatmap(images, specs), ref.heatmap(images, specs), rtol=0, atol=0)


def test_jsa_table_matches_the_notes_parameter_count():
    # §2.8: "≈31.8 M params, hand-counted"
    n = sum(int(np.prod(s)) for k, s in jsa_keys().items() if "running" not in k and "num_batches" not in k)
    assert n == sum(p.numel() for p in models.create("jsa").parameters())
    assert 31.7e6 < n < 31.9e6


def test_mismatch_is_refused_with_every_key_listed_and_allow_missing_proceeds(tmp_path, capsys):
    official = random_state(ezvsl_keys("module."))
    del official["module.aud_proj.bias"]
    official["module.extra_head.weight"] = torch.zeros(3)
    official["module.img_proj.weight"] = torch.zeros(256, 512, 1, 1)
    src = tmp_path / "ez.pth"
    torch.save({"model": official}, src)
    out = tmp_path / "ez.safetensors"
    assert main(["import", "--from", "ezvsl", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "missing: aud_proj.bias" in err and "unexpected: extra_head.weight" in err
    assert "other shape: img_proj.weight: (256, 512, 1, 1) -> (512, 512, 1, 1)" in err
    assert "--allow-missing" in err and not out.exists()
    # the wrong method's checkpoint is refused the same way
    assert main(["import", "--from", "lvs", str(src), "-o", str(out)]) == 2
    assert "unexpected: img_proj.bias" in capsys.readouterr().err

    assert main(["import", "--from", "ezvsl", str(src), "-o", str(out), "--allow-missing"]) == 0
    assert "warning: missing: aud_proj.bias" in capsys.readouterr().err
    loaded = models.load(out)
    assert loaded.trained_on["missing"] == ["aud_proj.bias"]
    assert loaded.trained_on["unexpected"] == ["extra_head.weight"]
    torch.testing.assert_close(loaded.audnet.conv1.weight, official["module.audnet.conv1.weight"])


def test_only_weights_are_ever_read(tmp_path, capsys):
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    src = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": Evil()}, src)
    assert main(["import", "--from", "jsa", str(src), "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "weights-only" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["import", "--from", "jsa", str(tmp_path / "absent.pth"), "-o",
                 str(tmp_path / "y.safetensors")]) == 2


def test_prefixes_and_containers_are_unwrapped(tmp_path):
    from soundlens.models.importers import read_official

    w = torch.arange(3.0)
    for i, obj in enumerate([{"state_dict": {"model.imgnet.x": w}},  # Lightning .ckpt (§7.3)
                             {"model": {"module.imgnet.x": w}, "epoch": np.int64(3)},
                             {"imgnet.x": w}]):
        path = tmp_path / f"{i}.pth"
        torch.save(obj, path)
        assert list(read_official(path)) == ["imgnet.x"]
    meta = json.loads(json.dumps(models.importers.official_sources()["ssltie"].config))
    assert meta == {"audio_preset": "ssltie", "image_preset": "lvs"}
    import argparse

    from soundlens.tools.commands import import_cmd

    parser = argparse.ArgumentParser()
    import_cmd.add_arguments(parser)
    choices = next(a.choices for a in parser._actions if a.dest == "source")
    assert choices == sorted(models.importers.official_sources())  # the CLI lists what the registry knows
    assert {"ezvsl", "slavc", "lvs", "sslalign", "ssltie", "jsa"} <= set(choices)

