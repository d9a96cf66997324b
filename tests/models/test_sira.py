"""SIRA-SSL (official_repos.md §2.7): flow inputs, spatial integration, recursive attention, and a
training loop that runs (the release's crashes)."""

import cv2
import numpy as np
import torch
from soundlens import models
from soundlens.models.layers import FARNEBACK_PARAMS, farneback_flow
from soundlens.training.engine import TrainConfig, fit, model_inputs
from soundlens.training.synth import SceneConfig, SynthPairs, SynthVideo
from torch.utils.data import Dataset, default_collate

SCENES = SceneConfig(image_size=112)


class VideoPairs(Dataset):
    """Key frame + the next frame + 3 s of audio around it, from a procedural video."""

    def __init__(self, video: SynthVideo, frames: list[int]):
        self.video, self.frames = video, frames

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        f, v = self.frames[i], self.video
        start = f / v.fps - 1.5
        return {"frame": torch.from_numpy(v.frame(f).copy()),
                "next_frame": torch.from_numpy(v.frame(f + 1).copy()),
                "waveform": torch.from_numpy(v.audio(start, start + 3.0).copy()),
                "sample_rate": v.sample_rate}


def video_pairs(n=8):
    video = SynthVideo(8.0, seed=0, config=SCENES, fps=10.0)
    return VideoPairs(video, list(range(20, 20 + 5 * n, 5)))


def test_farneback_flow_follows_a_shift():
    assert FARNEBACK_PARAMS == {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                                "poly_sigma": 1.2, "flags": 0}  # §2.6
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), (0, 0), 2.0)
    moved = np.roll(frame, (2, 3), axis=(0, 1))  # 3 px right, 2 px down
    flow = farneback_flow(frame, moved)
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [3.0, 2.0], atol=0.3)
    np.testing.assert_allclose(farneback_flow(frame, frame), 0.0, atol=0.05)


def test_flow_paths_agree_and_change_the_map():
    torch.manual_seed(0)
    model = models.create("sira", encoder="lite").eval()
    batch = default_collate([video_pairs(2)[i] for i in range(2)])
    inputs = model_inputs(model, batch, train=True)  # SIRA never augments: train == test geometry
    live = model.prepare_flow(batch["frame"], batch["next_frame"])  # what the live pipeline calls
    assert live.shape == (2, 2, 112, 112) and live.abs().max() > 0
    torch.testing.assert_close(model._flow(inputs, inputs["images"]), live)  # training derives the same flow
    with torch.no_grad():
        zero = model.heatmap(inputs["images"], inputs["specs"])
        torch.testing.assert_close(model.heatmap(inputs["images"], inputs["specs"],
                                                 flow=torch.zeros_like(live)), zero)
        model.train()  # batch statistics: the flow trunk sees its input at unit scale, as after training
        zero = model.heatmap(inputs["images"], inputs["specs"])
        moving = model.heatmap(inputs["images"], inputs["specs"], flow=live)
        assert (moving - zero).abs().max() > 1e-3 * zero.abs().max()


def test_maps_do_not_depend_on_the_rest_of_the_batch():
    # the release min-max normalises the audio map and the recursive mask over the whole batch
    torch.manual_seed(0)
    model = models.create("sira", encoder="lite").eval()
    ds = SynthPairs(3, seed=5, config=SCENES)
    inputs = model_inputs(model, default_collate([ds[i] for i in range(3)]), train=False)
    with torch.no_grad():
        full = model.heatmap(inputs["images"], inputs["specs"])
        single = model.heatmap(inputs["images"][1:2], inputs["specs"][1:2])
    torch.testing.assert_close(single[0], full[1], rtol=1e-4, atol=1e-5)


def test_pretrained_vision_is_frozen_and_the_flow_trunk_keeps_its_own_stem(tmp_path):
    trunk = models.build_encoder("lite", 3)
    path = tmp_path / "imagenet_like.pth"
    torch.save(trunk.state_dict(), path)
    model = models.create("sira", encoder="lite", pretrained_image=str(path))
    assert not any(p.requires_grad for p in model.imgnet.parameters())
    assert all(p.requires_grad for p in model.flownet.parameters())
    flow_state = model.flownet.state_dict()
    assert flow_state["stages.0.0.weight"].shape[1] == 2  # a fresh 2-channel stem (§2.6)
    torch.testing.assert_close(flow_state["stages.1.0.weight"], trunk.state_dict()["stages.1.0.weight"])
    unfrozen = models.create("sira", encoder="lite", pretrained_image=str(path), freeze_vision=False)
    assert all(p.requires_grad for p in unfrozen.imgnet.parameters())


def test_training_runs_in_the_engine_and_lowers_the_loss():
    torch.manual_seed(0)
    model = models.create("sira", encoder="lite")
    history = fit(model, video_pairs(8), TrainConfig(epochs=1, batch_size=4, lr=1e-3, amp=False))
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert {"trimap", "pair_nce", "region_kl"} <= set(history[0])

    torch.manual_seed(0)
    model = models.create("sira", encoder="lite")
    data = video_pairs(8)
    inputs = model_inputs(model, default_collate([data[i] for i in range(8)]), train=True)

    def loss():
        model.train()
        with torch.no_grad():
            return model.loss(inputs)["loss"].item()

    before = loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(6):
        model.train()
        out = model.loss(inputs)["loss"]
        opt.zero_grad()
        out.backward()
        opt.step()
    assert loss() < 0.5 * before


def test_localize_takes_the_motion_into_each_frame_from_the_frame_before():
    torch.manual_seed(0)
    batch = default_collate([video_pairs(2)[i] for i in range(2)])
    previous, frames, wav = batch["frame"], batch["next_frame"], batch["waveform"]
    model = models.create("sira", encoder="lite").train()  # batch statistics, as in the flow test above
    with torch.no_grad():
        moving = model.localize(frames, wav, 16000, previous_frames=previous)
        still = model.localize(frames, wav, 16000)
        images, specs = model.prepare(frames, wav, 16000)
        expected = model.heatmap(images, specs, flow=model.prepare_flow(previous, frames))
    torch.testing.assert_close(moving, expected)
    assert (moving - still).abs().max() > 1e-3 * still.abs().max()
    no_flow = models.create("sira", encoder="lite", flow=False).eval()
    assert not any(name.startswith(("flownet", "attmodule")) for name in no_flow.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(no_flow.localize(frames, wav, 16000, previous_frames=previous),
                                   no_flow.localize(frames, wav, 16000))
