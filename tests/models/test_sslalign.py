"""SSL-Align (paper 2): s_L (Eq. 1), s_A (Eq. 2), the 9-pair loss (Eq. 3) and conceptual positives
mined by training/neighbours.py."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.training.engine import model_inputs
from soundlens.training.neighbours import (
    ConceptualPositives,
    NeighbourIndex,
    default_index_path,
    mine_neighbours,
)
from soundlens.training.synth import SceneConfig, SynthPairs, write_pairs
from torch.utils.data import default_collate

SCENES = SceneConfig(image_size=112)


def collate(model, dataset, n):
    return model_inputs(model, default_collate([dataset[i] for i in range(n)]), train=False)


def test_test_time_network_is_lvs():
    cfg = models.make_config("sslalign")
    assert (cfg.encoder == "resnet18_lvs" and cfg.audio_preset == "sslalign"
            and cfg.image_preset_name() == "sslalign")
    model = models.create("sslalign").eval()
    images, specs = torch.randn(2, 3, 224, 224), torch.randn(2, *model.audio_preset.shape)
    with torch.no_grad():
        maps = model.heatmap(images, specs)
    assert maps.shape == (2, 14, 14) and maps.abs().max() <= 1 + 1e-5  # a cosine map (§2.4)


def test_loss_is_eq3_with_eq1_and_eq2():
    torch.manual_seed(0)
    model = models.create("sslalign", encoder="lite", augment=False).eval()
    inputs = collate(model, SynthPairs(6, seed=1, config=SCENES), 6)
    with torch.no_grad():
        out = model.loss(inputs)
        v, a = model.features(inputs["images"], inputs["specs"])
        # Eq. 1 with M = 1: mean over positions of the cosine of v^xy and a
        s_l = torch.einsum("nchw,mc->nmhw", F.normalize(v, dim=1), F.normalize(a, dim=1)).mean(dim=(2, 3))
        # Eq. 2: cosine of the projected average-pooled image and the projected audio
        s_a = F.normalize(model.proj_img(v.mean(dim=(2, 3))), dim=1) @ F.normalize(model.proj_aud(a),
                                                                                   dim=1).t()
    target = torch.arange(6)
    # No augmentation and no neighbour index: V = {v, v_conc = v}, A = {a, a_conc = a}, so Eq. 3
    # sums the (v, a) term over 2 x 2 pairs; InfoNCE over the other clips' audio.
    torch.testing.assert_close(out["loc"], 4 * F.cross_entropy(s_l / 0.07, target))
    torch.testing.assert_close(out["align"], 4 * F.cross_entropy(s_a / 0.07, target))
    assert out["conceptual"] == 0


def test_eq1_pseudo_mask_weights_the_positive_region():
    torch.manual_seed(0)
    model = models.create("sslalign", encoder="lite", loc_mask="trimap").eval()
    v, a = torch.rand(3, 8, 5, 5), torch.rand(4, 8)
    cos = torch.einsum("nchw,mc->nmhw", F.normalize(v, dim=1), F.normalize(a, dim=1)).flatten(2)
    m = torch.sigmoid((cos - 0.65) / 0.03)  # LVS' soft positive region as Eq. 1's mask M
    s_l = model.localization_similarity(v, a)
    torch.testing.assert_close(s_l, (m * cos).sum(2) / m.sum(2))
    # the mask favours the high-cosine region
    assert s_l.shape == (3, 4) and (s_l >= cos.mean(2) - 1e-6).all()
    with pytest.raises(SoundLensError, match="loc_mask"):
        models.create("sslalign", encoder="lite", loc_mask="box")


def test_neighbours_mine_store_and_draw(tmp_path):
    torch.manual_seed(0)
    encoder = models.create("ezvsl", encoder="lite")
    ckpt = models.save(encoder.eval(), tmp_path / "enc.safetensors")
    root = write_pairs(tmp_path / "pairs", 12, seed=2, config=SCENES)
    from soundlens.training.datasets import AudioVisualFolder

    folder = AudioVisualFolder(root)
    index = mine_neighbours(folder, k=3, checkpoint=ckpt)
    assert index.image.shape == index.audio.shape == (12, 3)
    assert not (index.image == np.arange(12)[:, None]).any()  # never oneself
    path = index.save(default_index_path(folder))
    assert path == root / "neighbours.npz"
    again = NeighbourIndex.load(path)
    assert np.array_equal(again.image, index.image) and again.ids == folder.ids and again.meta["k"] == 3
    # the same neighbours from the encoder's embeddings, computed directly
    with torch.no_grad():
        embs = [encoder.embed(*encoder.prepare(folder[i]["frame"][None], folder[i]["waveform"][None],
                                                folder[i]["sample_rate"])) for i in range(12)]
    img = torch.cat([e[0] for e in embs])
    sims = img @ img.t() - 10 * torch.eye(12)
    assert np.array_equal(np.sort(index.image, 1), np.sort(sims.topk(3, dim=1).indices.numpy(), 1))

    pairs = SynthPairs(12, seed=2, config=SCENES)  # the same clips, in memory
    wrapped = ConceptualPositives(pairs, again)
    item = wrapped[4]
    j, m = item["conc_index"].tolist()
    assert j in index.image[4] and m in index.audio[4]
    assert (torch.equal(item["conc_frame"], pairs[j]["frame"])
            and torch.equal(item["conc_waveform"], pairs[m]["waveform"]))
    with pytest.raises(SoundLensError, match="mine it again"):
        ConceptualPositives(SynthPairs(5, config=SCENES), again)


def test_neighbours_from_local_encoder_files(tmp_path):
    torch.manual_seed(0)
    img_file, aud_file = tmp_path / "img.pth", tmp_path / "aud.pth"
    torch.save(models.build_encoder("lite", 3).state_dict(), img_file)
    torch.save(models.build_encoder("lite", 1).state_dict(), aud_file)
    index = mine_neighbours(SynthPairs(8, seed=0, config=SCENES), k=2, image_encoder=img_file,
                            audio_encoder=aud_file, arch="lite", image_preset="lite")
    assert index.image.shape == (8, 2) and index.meta["arch"] == "lite"
    with pytest.raises(SoundLensError, match="name the encoder"):
        mine_neighbours(SynthPairs(8, config=SCENES), k=2)


def test_training_with_conceptual_positives_lowers_the_loss():
    torch.manual_seed(0)
    model = models.create("sslalign", encoder="lite")
    pairs = SynthPairs(8, seed=3, config=SCENES)
    index = NeighbourIndex(np.roll(np.arange(8), 1)[:, None], np.roll(np.arange(8), -1)[:, None])
    inputs = collate(model, ConceptualPositives(pairs, index), 8)
    assert inputs["conc_frame"].shape == (8, 112, 112, 3)

    def seeded():
        model.train()
        torch.manual_seed(123)
        with torch.no_grad():
            return model.loss(inputs)

    before = seeded()
    assert before["conceptual"] == 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(6):
        model.train()
        loss = model.loss(inputs)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = seeded()
    assert after["loss"] < 0.7 * before["loss"]
