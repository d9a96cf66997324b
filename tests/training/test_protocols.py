"""Protocol presets on hand-built 224 x 224 maps: ties, flat maps, exact boxes, OGL, adaptive, SLAVC."""

from __future__ import annotations

import numpy as np
import pytest
from soundlens.training import metrics, protocols
from soundlens.training.datasets.gt import union_map

N = 224 * 224
A_ROWS, B_ROWS = slice(0, 56), slice(56, 168)  # A: 56 rows = N/4 pixels; B: 112 rows = N/2; C = the rest
GT_A = union_map([[0, 0, 1, 0.25]])  # rows 0..55


def three_levels() -> np.ndarray:
    """A = 1, B = 0.5, C = 0: the median (sorted index N/2) falls inside the tied 0.5 block."""
    m = np.zeros((224, 224), np.float32)
    m[A_ROWS] = 1.0
    m[B_ROWS] = 0.5
    return m


def test_presets_available_and_get():
    assert {"ezvsl", "slavc", "lvs", "sslalign", "sslalign_bilinear", "sslalign_others", "jsa", "htf"} <= set(
        protocols.available())
    # one preset per official SSL-Align loop (kaistmm/SSLalignment test.py, official_repos.md §2.4)
    lvs_vgg, lvs_other, others = (protocols.get(n)
                                  for n in ("sslalign", "sslalign_bilinear", "sslalign_others"))
    assert (lvs_vgg.interpolation, lvs_vgg.normalisation) == ("cv2_linear", "minmax_inverted")
    assert (lvs_other.interpolation, lvs_other.normalisation) == ("bilinear_align_corners", "minmax_inverted")
    assert (others.interpolation, others.normalisation) == ("bilinear_align_corners", "minmax")
    assert all(p.comparator == ">" and p.ogl_alpha == 0.4 and set(p.extras) == {"adaptive", "iiou"}
               for p in (lvs_vgg, lvs_other, others))
    assert "validate_lvs" in lvs_vgg.source and "validate_lvs" in lvs_other.source
    assert "test.py validate:" in others.source
    p = protocols.get("jsa")
    assert (p.threshold, p.threshold_value, p.comparator, p.interpolation) == ("fixed", 0.6, ">=", "bicubic")
    with pytest.raises(KeyError, match="available"):
        protocols.get("nope")
    with pytest.raises(ValueError):
        protocols.Protocol("bad", "bicubic", "minmax", threshold="fixed")


@pytest.mark.parametrize("name", ["ezvsl", "slavc", "lvs", "sslalign", "sslalign_bilinear", "sslalign_others",
                                  "jsa", "htf"])
def test_upsample_224_is_identity(name):
    m = np.random.default_rng(0).random((224, 224)).astype(np.float32)
    out = protocols.upsample(m, protocols.get(name))
    assert out.shape == (224, 224) and out.dtype == np.float32
    np.testing.assert_allclose(out, m, atol=1e-6)


def test_upsample_native_corners():
    native = np.array([[0.0, 1.0], [2.0, 3.0]])
    up = protocols.upsample(native, protocols.get("ezvsl"))  # bilinear, align_corners: corners exact
    assert (up[0, 0], up[0, -1], up[-1, 0], up[-1, -1]) == (0, 1, 2, 3)
    cv = protocols.upsample(native, protocols.get("lvs"))  # cv2 half-pixel centres clamp at the border
    assert (cv[0, 0], cv[-1, -1]) == (0, 3)
    assert protocols.upsample(np.ones((7, 9)), protocols.get("htf")).shape == (224, 224)


def test_ties_at_median_greater_vs_greater_equal():
    m = three_levels()
    ge = protocols.binarize(m, protocols.get("ezvsl"))  # >= 0.5: A and B
    gt_ = protocols.binarize(m, protocols.get("sslalign"))  # > 0.5: A only
    assert int(ge.sum()) == 3 * N // 4 and int(gt_.sum()) == N // 4
    assert metrics.ciou(ge, GT_A) == pytest.approx(1 / 3)
    assert metrics.ciou(gt_, GT_A) == 1.0
    assert metrics.ciou(protocols.binarize(m, protocols.get("lvs")), GT_A) == 1.0
    assert metrics.ciou(protocols.binarize(m, protocols.get("jsa")), GT_A) == 1.0  # fixed 0.6


def test_map_whose_peak_is_exactly_the_box():
    # 1 on the GT box (a quarter of the image), 0 elsewhere: the median is a tied 0, so `>=`
    # predicts every pixel while `>` predicts exactly the box.
    m = GT_A.copy()
    assert metrics.ciou(protocols.binarize(m, protocols.get("ezvsl")), GT_A) == pytest.approx(0.25)
    assert metrics.ciou(protocols.binarize(m, protocols.get("sslalign")), GT_A) == 1.0
    assert metrics.ciou(protocols.binarize(m, protocols.get("htf")), GT_A) == 1.0
    # a box over three quarters: the median is a tied 1, so `>` alone predicts nothing, while
    # LVS/HTF keep values >= 1 (they zero only values < 1)
    big = union_map([[0, 0, 1, 0.75]])
    assert metrics.ciou(protocols.binarize(big, protocols.get("ezvsl")), big) == 1.0
    assert metrics.ciou(protocols.binarize(big, protocols.get("sslalign")), big) == 0.0
    assert metrics.ciou(protocols.binarize(big, protocols.get("lvs")), big) == 1.0


@pytest.mark.parametrize(("name", "value", "positives"), [
    ("ezvsl", 0.3, N),  # min-max leaves a flat map as is; >= its own median: everything
    ("sslalign", 0.3, 0),  # 1 - minmax(-x) = 1.3 everywhere; > 1.3: nothing
    ("sslalign_others", 0.3, 0),  # SSL-Align's `validate`: min-max keeps 0.3; > 0.3: nothing
    ("lvs", 0.3, N),  # 1.3 >= 1 stays positive
    ("lvs", -0.3, 0),  # 0.7 < 1: zeroed
    ("htf", 0.3, 0),  # min-max keeps 0.3: not > 0.3, not >= 1
    ("htf", 1.5, N),
    ("jsa", 0.3, 0),  # 0.3 < 0.6
    ("jsa", 0.7, N),
])
def test_flat_maps(name, value, positives):
    flat = np.full((224, 224), value, np.float32)
    assert int(protocols.binarize(flat, protocols.get(name)).sum()) == positives


def test_adaptive_threshold_matches_gt_area():
    # value = 223 - row: ties within rows. GT = rows 0..55 (k = 12,544 pixels).
    m = np.repeat((223 - np.arange(224, dtype=np.float32))[:, None], 224, axis=1)
    p = protocols.get("sslalign")
    pred = protocols.normalize(m, p)[0]
    adap = protocols.binarize_normalized(pred, p, GT_A, "adaptive")
    assert int(adap.sum()) == 55 * 224  # thr = sorted[N - k] = row 55's value; strict > drops that row
    assert metrics.ciou(adap, GT_A) == pytest.approx(55 / 56)
    median = protocols.binarize_normalized(pred, p)
    assert metrics.ciou(median, GT_A) == pytest.approx(56 / 111)  # rows 0..110 are above the median
    report = protocols.score_maps({"x_1": m}, {"x_1": GT_A}, p)
    assert report["cIoU"] == 1.0 and report["cIoU_adap"] == 1.0
    assert report["per_sample"]["x_1"] == pytest.approx(56 / 111)
    assert report["per_sample_adap"]["x_1"] == pytest.approx(55 / 56)
    # one sample, one instance: iIoU / iAUC equal cIoU / AUC (and their adaptive forms)
    assert (report["iIoU"] == 1.0 and report["iAUC"] == report["AUC"]
            and report["iAUC_adap"] == report["AUC_adap"])
    assert report["n_instances"] == 1 and report["instance_naming"] == "per_sample"


def test_ogl_fusion_ezvsl():
    av = GT_A.copy()  # AV hot on A
    obj = np.zeros((224, 224), np.float32)
    obj[168:] = 1.0  # object map hot on C
    # minmax(0.4 * AV + 0.6 * OBJ): A = 2/3, C = 1, rest 0 (half the image) -> median = 2/3, >= keeps A and C
    p = protocols.get("ezvsl")
    report = protocols.score_maps({"s": av}, {"s": GT_A}, p, object_maps={"s": obj})
    assert report["ogl"] and report["per_sample"]["s"] == pytest.approx(0.5)
    assert protocols.score_maps({"s": av}, {"s": GT_A}, p)["per_sample"]["s"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="OGL"):
        protocols.normalize(av, protocols.get("lvs"), obj)


def test_score_maps_report_and_missing_maps():
    maps = {"a": three_levels(), "b": union_map([[0, 0, 1, 0.75]])}
    gts = {"a": GT_A, "b": union_map([[0, 0, 1, 0.75]])}
    r = protocols.score_maps(maps, gts, protocols.get("ezvsl"))
    assert r["n"] == 2 and r["per_sample"] == pytest.approx({"a": 1 / 3, "b": 1.0})
    assert r["cIoU"] == 0.5 and r["mean_cIoU"] == pytest.approx(2 / 3)
    assert r["AUC"] == pytest.approx(metrics.auc([1 / 3, 1.0]))
    assert r["mcIoU"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no heatmap"):
        protocols.score_maps({"a": maps["a"]}, gts, protocols.get("ezvsl"))


def test_slavc_report_with_a_silent_sample():
    tau = 0.03
    raw = lambda score: (2 * score - 1) / tau  # noqa: E731 - inverse of SLAVC's fixed range
    big = union_map([[0, 0, 1, 0.75]])
    s1 = np.where(big > 0, raw(0.9), raw(0.0)).astype(np.float32)  # right place, confidence 0.9
    s2 = np.full((224, 224), raw(0.0), np.float32)
    s2[168:] = raw(0.8)  # hot on C, GT is A: every pixel predicted (tied median) -> cIoU 0.25
    s3 = np.full((224, 224), raw(0.7), np.float32)  # silent sample, confidence 0.7
    r = protocols.score_maps({"s1": s1, "s2": s2, "s3": s3}, {"s1": big, "s2": GT_A, "s3": None},
                             protocols.get("slavc"))
    assert r["n"] == 2 and r["n_silent"] == 1
    assert r["per_sample"] == pytest.approx({"s1": 1.0, "s2": 0.25})
    # thresholds 0.8, 0.7: precision 1/2 then 1/3 at recall 1 -> AP 0; F1 max 2/3; LocAcc 1/2
    assert r["AP"] == 0.0 and r["max_F1"] == pytest.approx(2 / 3) and r["LocAcc"] == 0.5


# ---------------------------------------------------------------- `soundlens eval` end to end

def _bench(tmp_path):
    """`a` (GT rows 0..55, three-level map), `b` (GT rows 0..167, map = its box) and `c`, a silent
    scene (`"bbox": []`, as the procedural benchmark writes it)."""
    import json

    records = [{"file": "aaaaaaaaaaa_000001", "class": "dog", "bbox": [[0, 0, 1, 0.25]]},
               {"file": "bbbbbbbbbbb_000002", "class": "cat", "bbox": [[0, 0, 1, 0.75]]},
               {"file": "ccccccccccc_000003", "class": "cow", "bbox": []}]
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "annotations.json").write_text(json.dumps(records))
    maps = {"aaaaaaaaaaa_000001.jpg": three_levels(), "bbbbbbbbbbb_2000_12000": union_map([[0, 0, 1, 0.75]]),
            "ccccccccccc_000003": np.zeros((7, 7))}
    np.savez(tmp_path / "maps.npz", **maps)
    return bench, tmp_path / "maps.npz"


def test_eval_cli_end_to_end(tmp_path, capsys):
    import json

    from soundlens.tools.main import main

    bench, npz = _bench(tmp_path)
    out = tmp_path / "report.json"
    assert main(["eval", "--predictions", str(npz), "--data", str(bench), "--protocol", "ezvsl",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "protocol ezvsl" in text and "cIoU" in text and "50.00" in text
    report = json.loads(out.read_text())
    # ezvsl: a -> 1/3 (ties at the median, >=), b -> 1; AUC: y = 1 up to x = 0.30, then 1/2
    assert report["n"] == 2 and report["n_silent"] == 1 and "non-sounding" in text
    assert report["cIoU"] == 0.5 and report["mean_cIoU"] == pytest.approx(2 / 3)
    assert report["AUC"] == pytest.approx(0.05 * (6 + 0.75 + 13 * 0.5), abs=1e-9)
    assert report["per_sample"] == pytest.approx({"aaaaaaaaaaa_000001": 1 / 3, "bbbbbbbbbbb_000002": 1.0})
    # sslalign: strict > keeps only A for `a` (cIoU 1) but predicts nothing for `b` (tied 1s)
    assert main(["eval", "--predictions", str(npz), "--data", str(bench / "annotations.json"),
                 "--protocol", "sslalign", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["per_sample"] == {"aaaaaaaaaaa_000001": 1.0, "bbbbbbbbbbb_000002": 0.0}
    assert report["cIoU"] == 0.5 and report["annotation_kind"] == "normalised"
    # VGG-SS-format annotations: one clip, one instance (SSL-Align names it `<ytid>_<ms>_<ms>`)
    assert report["instance_naming"] == "vggss" and report["n_instances"] == 2
    assert (report["iIoU"], report["iAUC"]) == (report["cIoU"], report["AUC"])


def test_eval_cli_flickr_boxes_and_errors(tmp_path, capsys):
    import json

    from soundlens.tools.main import main

    (tmp_path / "boxes.json").write_text(json.dumps({"123": [[0, 0, 256, 64], [0, 0, 256, 64]],
                                                     "456": [[0, 0, 64, 64]]}))
    np.savez(tmp_path / "maps.npz", **{"123": GT_A})
    args = ["eval", "--predictions", str(tmp_path / "maps.npz"), "--data", str(tmp_path / "boxes.json")]
    assert main(args + ["--protocol", "lvs"]) == 2
    assert "1 of 2 annotated samples have no heatmap" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert main(args + ["--protocol", "lvs", "--allow-missing", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 1 and report["n_missing"] == 1 and report["per_sample"]["123"] == 1.0
    np.savez(tmp_path / "bad.npz", **{"123": np.zeros((2, 3, 4))})
    assert main(["eval", "--predictions", str(tmp_path / "bad.npz"), "--data", str(tmp_path / "boxes.json"),
                 "--allow-missing"]) == 2
    assert "must be 2-D" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["lvs", "htf"])
def test_ones_stay_positive_equals_the_official_step_sequence(name):
    # LVS/HTF (§2.3, §2.6): v[v > thr] = 1; v[v < 1] = 0; positive = v >= 0.5. Quantised values
    # make ties, and some maps have more than half their pixels at the maximum.
    rng = np.random.default_rng(1)
    p = protocols.get(name)
    for levels in (3, 5, 50):
        m = rng.integers(0, levels, (224, 224)).astype(np.float32)
        m[: rng.integers(0, 224)] = levels  # a saturated block of varying size
        pred = protocols.normalize(m, p)[0]
        v = pred.copy()
        thr = np.sort(v.ravel())[v.size // 2]
        v[v > thr] = 1
        v[v < 1] = 0
        np.testing.assert_array_equal(protocols.binarize(m, p), v >= 0.5)
