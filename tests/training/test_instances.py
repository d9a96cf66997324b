"""iIoU instances as SSL-Align's evaluator forms them, and every metric the official loops print.

The reference below re-states, step by step, what kaistmm/SSLalignment `test.py::validate_lvs`
and `test.py::validate` (with `utils.Evaluator_iiou`), LVS `test.py::main` and JSA
`test_model.py::validate_img_aud` do to one map (official_repos.md §2.3, §2.4, §2.8, §3.1):
resize, normalise, sort for the threshold, binarise, per-clip cIoU, then the instance dictionary
keyed by `short_name` of the name the loop sees, and the printed aggregates. It is written from
the definitions (numpy sort, in-place 0/1 indicators, trapezoids), independently of
`training.protocols`, and `score_maps` must agree with it exactly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from soundlens.training import metrics, protocols
from soundlens.training.datasets import annotations as ann_mod
from soundlens.training.datasets.gt import union_map

N = 224 * 224
THR = [0.05 * i for i in range(21)]


# ---------------------------------------------------------------- the official step sequences

def _minmax(x):
    lo, hi = x.min(), x.max()
    return x if hi - lo == 0 else (x - lo) / (hi - lo)


def _resize(native, how):
    import cv2
    import torch
    import torch.nn.functional as F

    x = np.asarray(native, np.float32)
    if how == "cv2_linear":
        return cv2.resize(x, dsize=(224, 224), interpolation=cv2.INTER_LINEAR)
    mode, align = {"bilinear": ("bilinear", True), "bicubic": ("bicubic", False)}[how]
    t = F.interpolate(torch.from_numpy(x)[None, None], size=(224, 224), mode=mode, align_corners=align)
    return t[0, 0].numpy()


def _cal_ciou(pred, gt, thr, strict=True):
    infer = np.zeros((224, 224))
    infer[(pred > thr) if strict else (pred >= thr)] = 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(infer * gt) / (np.sum(gt) + np.sum(infer * (gt == 0)))


def _trapz(y):
    return float(sum((THR[i + 1] - THR[i]) * (y[i] + y[i + 1]) / 2 for i in range(20)))


def _auc(values):
    return _trapz([np.sum(np.array(values) >= t) / len(values) for t in THR])


def _instance_rate(groups, t):
    out = []
    for v in groups.values():
        pair = np.array(v)
        pair[pair >= t] = 1
        pair[pair < t] = 0
        out.append(np.min(pair))
    return np.mean(out)


def _short_name(name):
    return "_".join(name.split("/")[-1].replace(".jpg", "").split("_")[:-1])


def official_sslalign(loop, natives, gts, names, objects=None):
    """SSL-Align's loop over clips: `loop` is "lvs_vggss", "lvs_other" (validate_lvs branches) or
    "validate". Returns the printed metrics (fractions) and the per-clip lists."""
    how = "cv2_linear" if loop == "lvs_vggss" else "bilinear"
    ciou, ciou_adap, groups, groups_adap, ogl, ogl_adap = [], [], {}, {}, [], []
    for k, native in enumerate(natives):
        up = _resize(native, how)
        pred = _minmax(up) if loop == "validate" else 1 - _minmax(-up)
        gt = gts[k]
        ciou.append(_cal_ciou(pred, gt, np.sort(pred.flatten())[int(N * 0.5)]))
        n_gt = int((gt != 0).sum()) or N // 2
        ciou_adap.append(_cal_ciou(pred, gt, np.sort(pred.flatten())[N - n_gt]))
        key = _short_name(names[k])
        groups.setdefault(key, []).append(ciou[-1])
        groups_adap.setdefault(key, []).append(ciou_adap[-1])
        if objects is not None:
            obj_up = _resize(objects[k], how)
            obj = _minmax(obj_up) if loop == "validate" else 1 - _minmax(-obj_up)
            fused = _minmax(pred * 0.4 + obj * (1 - 0.4))
            ogl.append(_cal_ciou(fused, gt, np.sort(fused.flatten())[int(N * 0.5)]))
            ogl_adap.append(_cal_ciou(fused, gt, np.sort(fused.flatten())[N - n_gt]))
    out = {
        "mean_cIoU": float(np.mean(ciou)), "cIoU": np.sum(np.array(ciou) >= 0.5) / len(ciou),
        "cIoU_adap": np.sum(np.array(ciou_adap) >= 0.5) / len(ciou_adap),
        "iIoU": _instance_rate(groups, 0.5), "iIoU_adap": _instance_rate(groups_adap, 0.5),
        "AUC": _auc(ciou), "AUC_adap": _auc(ciou_adap),
        "iAUC": _trapz([_instance_rate(groups, t) for t in THR]),
        "iAUC_adap": _trapz([_instance_rate(groups_adap, t) for t in THR]),
        "per_sample": ciou, "per_sample_adap": ciou_adap, "n_instances": len(groups),
    }
    if objects is not None:
        out["ogl"] = {"cIoU": np.sum(np.array(ogl) >= 0.5) / len(ogl), "AUC": _auc(ogl),
                      "cIoU_adap": np.sum(np.array(ogl_adap) >= 0.5) / len(ogl_adap),
                      "AUC_adap": _auc(ogl_adap)}
    return out


def official_lvs(natives, gts):
    """LVS test.py::main: pred[pred > thr] = 1; pred[pred < 1] = 0; cIoU of pred >= 0.5."""
    cious = []
    for native, gt in zip(natives, gts, strict=True):
        pred = 1 - _minmax(-_resize(native, "cv2_linear"))
        thr = np.sort(pred.flatten())[int(N / 2)]
        pred[pred > thr] = 1
        pred[pred < 1] = 0
        cious.append(_cal_ciou(pred, gt, 0.5, strict=False))
    return {"cIoU": np.sum(np.array(cious) >= 0.5) / len(cious), "AUC": _auc(cious), "per_sample": cious}


def official_jsa(natives, gts):
    """JSA test_model.py::validate_img_aud: bicubic (align_corners=False), min-max, fixed 0.6, >=."""
    cious = [_cal_ciou(_minmax(_resize(m, "bicubic")), gt, 0.6, strict=False)
             for m, gt in zip(natives, gts, strict=True)]
    return {"cIoU": np.mean(np.array(cious) >= 0.5), "AUC": _auc(cious), "per_sample": cious}


# ---------------------------------------------------------------- a hard set of maps

# Six VGG-SS-style clips, three from one YouTube video (the SoundLens id rule would merge them).
VGG_IDS = ["aaaaaaaaaaa_000010", "aaaaaaaaaaa_000020", "aaaaaaaaaaa_000030", "JIemsK_0lXc_000364",
           "bbbbbbbbbbb_000000", "ccccccccccc_000120"]


def _hard_set():
    """Native maps with heavy ties, a flat map, a saturated map, a map equal to its box, smooth
    random maps; GTs incl. an all-zero one (VGG-SS's MKC9LvRivTM_000030) and a two-box union."""
    rng = np.random.default_rng(7)
    quantised = rng.integers(0, 3, (14, 14)).astype(np.float32)  # 3 levels: ties at the median
    saturated = rng.random((7, 7)).astype(np.float32)
    saturated[:5] = 2.0  # more than half the pixels at the maximum
    box = union_map([[0.1, 0.2, 0.6, 0.7]])
    natives = [quantised, np.full((7, 7), 0.3, np.float32), saturated, box.copy(),
               rng.normal(size=(14, 14)).astype(np.float32), rng.random((7, 7)).astype(np.float32)]
    gts = [union_map([[0, 0, 0.5, 0.5]]), union_map([[0.2, 0.2, 0.8, 0.8]]), union_map([[0, 0, 1, 0.75]]),
           box, np.zeros((224, 224), np.float32), union_map([[0, 0, 0.4, 0.4], [0.5, 0.5, 1, 1]])]
    objects = [rng.random((7, 7)).astype(np.float32) for _ in natives]
    return natives, gts, objects


def _assert_same(report, ref, ids):
    for k in ("mean_cIoU", "cIoU", "cIoU_adap", "iIoU", "iIoU_adap", "AUC", "AUC_adap", "iAUC", "iAUC_adap"):
        assert report[k] == pytest.approx(ref[k], abs=1e-12), k
    assert [report["per_sample"][i] for i in ids] == ref["per_sample"]
    assert [report["per_sample_adap"][i] for i in ids] == ref["per_sample_adap"]
    assert report["n_instances"] == ref["n_instances"]


@pytest.mark.parametrize(("name", "loop"), [("sslalign", "lvs_vggss"), ("sslalign_bilinear", "lvs_other"),
                                            ("sslalign_others", "validate")])
def test_sslalign_protocols_equal_their_official_loop_on_vggss(name, loop):
    natives, gts, objects = _hard_set()
    # validate_lvs sees `<ytid>_<start ms>_<end ms>.mp4`, validate the same without `.mp4`
    names = [metrics.vggss_official_name(i) + (".mp4" if loop != "validate" else "") for i in VGG_IDS]
    ref = official_sslalign(loop, natives, gts, names, objects)
    p = protocols.get(name)
    report = protocols.score_maps(dict(zip(VGG_IDS, natives, strict=True)),
                                  dict(zip(VGG_IDS, gts, strict=True)), p, instance_naming="vggss")
    _assert_same(report, ref, VGG_IDS)
    # VGG-SS: one clip, one instance -> the instance metrics are the clip metrics
    assert report["n_instances"] == 6 and report["instance_naming"] == "vggss"
    assert (report["iIoU"], report["iAUC"]) == (report["cIoU"], report["AUC"])
    assert (report["iIoU_adap"], report["iAUC_adap"]) == (report["cIoU_adap"], report["AUC_adap"])
    # OGL (alpha 0.4): cIoU, AUC and their adaptive forms on the fused map
    ogl = protocols.score_maps(dict(zip(VGG_IDS, natives, strict=True)), dict(zip(VGG_IDS, gts, strict=True)),
                               p, object_maps=dict(zip(VGG_IDS, objects, strict=True)),
                               instance_naming="vggss")
    for k, v in ref["ogl"].items():
        assert ogl[k] == pytest.approx(v, abs=1e-12), k


def test_the_hard_set_has_ties_flat_maps_and_distinct_loops():
    natives, gts, _ = _hard_set()
    names = [metrics.vggss_official_name(i) for i in VGG_IDS]
    lvs_other = official_sslalign("lvs_other", natives, gts, names)
    # the flat map: 1 - minmax(-x) = 1.3 everywhere, `>` 1.3 predicts nothing; min-max keeps 0.3, same
    assert lvs_other["per_sample"][1] == 0.0
    # the all-zero GT scores 0 whenever something is predicted
    assert lvs_other["per_sample"][4] == 0.0
    # the map equal to its box: strict `>` at the tied 0 median predicts exactly the box
    assert lvs_other["per_sample"][3] == 1.0
    # the old rule on SoundLens ids merges the three `aaaaaaaaaaa` clips into one instance
    assert len({metrics.image_group(i) for i in VGG_IDS}) == 4


def test_lvs_and_jsa_protocols_equal_their_official_loops():
    natives, gts, _ = _hard_set()
    for name, ref in (("lvs", official_lvs(natives, gts)), ("jsa", official_jsa(natives, gts))):
        r = protocols.score_maps(dict(zip(VGG_IDS, natives, strict=True)),
                                 dict(zip(VGG_IDS, gts, strict=True)), protocols.get(name))
        assert [r["per_sample"][i] for i in VGG_IDS] == ref["per_sample"], name
        assert r["cIoU"] == ref["cIoU"] and r["AUC"] == pytest.approx(ref["AUC"], abs=1e-12), name


def test_validate_and_validate_lvs_normalisations_differ_by_rounding_only():
    # 1 - minmax(-x) and minmax(x) agree to float32 rounding; on a map whose values are not exact
    # binary fractions some pixels differ by one ulp, which is what moves ties across the median.
    x = np.random.default_rng(3).random((224, 224)).astype(np.float32) * 3 - 1
    a = protocols.normalize(x, protocols.get("sslalign_others"))[0]
    b = protocols.normalize(x, protocols.get("sslalign_bilinear"))[0]
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=2e-7)
    assert not np.array_equal(a, b)


# ---------------------------------------------------------------- instance naming

def test_instance_keys_per_dataset_naming():
    assert metrics.vggss_official_name("zpWuikVorYg_000032") == "zpWuikVorYg_32000_42000"
    assert metrics.instance_key("zpWuikVorYg_000032", "vggss") == "zpWuikVorYg_32000"
    # a YouTube id containing `_`: the first 11 characters are the id, as in `vgg_filename`
    assert metrics.instance_key("JIemsK_0lXc_000364", "vggss") == "JIemsK_0lXc_364000"
    assert metrics.instance_key("synth_000012", "vggss") == "synth_000012"  # no official name: itself
    assert metrics.official_name("10000130166", "flickr") == "10000130166.mp4"
    assert metrics.instance_key("10000130166", "flickr") == ""  # Flickr: the whole set is one instance
    assert metrics.instance_key("accordion_baby_10467_accordion", "image") == "accordion_baby_10467"
    assert metrics.instance_key("0d9u2CymIxc_1", "image") == "0d9u2CymIxc"  # S4: frames of one video
    assert metrics.instance_key("rq5RDUm2Hnk_1.mp4_1", "image") == "rq5RDUm2Hnk_1.mp4"  # MS3
    assert metrics.instance_key("x_1", "per_sample") == "x_1"
    assert [metrics.naming_for_kind(k) for k in ("normalised", "flickr", "pixels", "?")] == [
        "vggss", "flickr", "image", "per_sample"]
    with pytest.raises(ValueError, match="instance naming"):
        metrics.instance_key("a", "bogus")


def test_real_vggss_ids_are_one_instance_per_clip(fixtures_dir):
    records = json.loads((fixtures_dir / "annotations" / "vggss" / "vggss.json").read_text())
    ids = [r["file"] for r in records]
    assert len(ids) == 5158 and all(metrics.vggss_official_name(i) for i in ids)
    assert metrics.count_instances(ids, "vggss") == 5158
    assert len({metrics.image_group(i) for i in ids}) == 5017  # the rule on SoundLens ids: by video
    # any per-clip values (some on thresholds, one NaN): instance metrics == clip metrics exactly
    rng = np.random.default_rng(0)
    values = np.round(rng.random(len(ids)), 2)
    values[0] = float("nan")
    cious = dict(zip(ids, values.tolist(), strict=True))
    groups = metrics.group_cious(cious, metrics.instance_key_fn("vggss"))
    assert metrics.iiou(groups) == metrics.fraction_at_least(values)
    assert metrics.iauc(groups) == metrics.auc(values)
    by_video = metrics.group_cious(cious)
    assert metrics.iiou(by_video) != metrics.fraction_at_least(values)


def test_eval_cli_sslalign_on_real_vggss_clips_of_shared_videos(fixtures_dir, tmp_path):
    """`soundlens eval --predictions ... --protocol sslalign` on the 282 real VGG-SS clips whose
    YouTube video has several clips: iIoU == cIoU and iAUC == AUC, as in the official evaluator."""
    from collections import Counter

    from soundlens.tools.main import main

    path = fixtures_dir / "annotations" / "vggss" / "vggss.json"
    with pytest.warns(UserWarning):
        ann = ann_mod.load_vggss_json(path)
    per_video = Counter(i[:11] for i in ann.ids)
    ids = [i for i in ann.ids if per_video[i[:11]] > 1]
    assert len(ids) == 282
    rng = np.random.default_rng(5)
    maps = {}
    for k, i in enumerate(ids):  # 14 x 14 box maps (every other one inverted) plus noise
        box = ann.gt_map(i)[::16, ::16]
        maps[i] = ((box if k % 2 else 1 - box) + 0.3 * rng.random((14, 14))).astype(np.float32)
    np.savez(tmp_path / "maps.npz", **maps)
    out = tmp_path / "r.json"
    assert main(["eval", "--predictions", str(tmp_path / "maps.npz"), "--data", str(path), "--protocol",
                 "sslalign", "--allow-missing", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n"] == 282 and r["n_instances"] == 282 and r["instance_naming"] == "vggss"
    assert 0 < r["cIoU"] < 1
    assert (r["iIoU"], r["iAUC"], r["iIoU_adap"], r["iAUC_adap"]) == (r["cIoU"], r["AUC"], r["cIoU_adap"],
                                                                      r["AUC_adap"])
    # grouped by YouTube video (the old rule) the same clips give another iIoU: the test has teeth
    assert metrics.iiou(metrics.group_cious(r["per_sample"])) != r["cIoU"]


def test_is3_names_group_objects_of_one_image(fixtures_dir):
    """The real IS3 sample: one image, two sounding objects, one annotation each
    (`<image>_<object>`, SSL-Align's synthetic3240_bbox.json form)."""
    case = json.loads((fixtures_dir / "is3_sample" / "boxes.json").read_text())
    stem = case["image"].rsplit("_", 1)[0]  # accordion_baby_10467
    records = [{"image": f"visual_frames/{stem}_{s['object']}.jpg", "audio": s["audio"],
                "gt_box": s["box_xyxy_224"]}
               for s in case["sources"]]
    ann = ann_mod.pixel_boxes_from_list(records, "is3_sample")
    assert ann.ids == ["accordion_baby_10467_accordion", "accordion_baby_10467_baby"]
    assert ann.instance_naming == "image"
    acc = ann.gt_map(ann.ids[0])  # accordion box 65..167 x 61..149: 102 x 88 = 8,976 px
    assert int(acc.sum()) == 8976 and int(ann.gt_map(ann.ids[1]).sum()) == 129 * 213
    maps = {i: acc.copy() for i in ann.ids}  # both sounds point at the accordion
    r = protocols.score_maps(maps, ann.gt_maps(), protocols.get("sslalign"))
    # strict > at the tied-0 median predicts the accordion box: cIoU 1 for the accordion, and
    # 8976 / 27477 for the baby, whose box holds the accordion's
    assert r["per_sample"] == {ann.ids[0]: 1.0, ann.ids[1]: pytest.approx(8976 / 27477)}
    assert r["n_instances"] == 1 and r["cIoU"] == 0.5 and r["iIoU"] == 0.0
    # iAUC: the image passes while min(1, 0.3267) >= t, i.e. t = 0 ... 0.30 (7 points), then 0
    assert r["iAUC"] == pytest.approx(0.05 * 6 + 0.05 / 2, abs=1e-12)
    # AUC: y = 1 up to 0.30, then 1/2 (the accordion's 1.0 passes t = 1.0)
    assert r["AUC"] == pytest.approx(0.05 * 6 + 0.05 * 0.75 + 0.05 * 13 * 0.5, abs=1e-12)
    # adaptive: the accordion's top 8,976 values are tied 1s, `>` 1 predicts nothing -> 0; the
    # baby's threshold is 0 -> the accordion box again
    assert r["per_sample_adap"] == {ann.ids[0]: 0.0, ann.ids[1]: pytest.approx(8976 / 27477)}
    assert r["iIoU_adap"] == 0.0 and r["iAUC_adap"] == pytest.approx(0.05 / 2, abs=1e-12)  # only y(0) = 1
    # the same maps as separate images (per-sample instances): iIoU = cIoU
    alone = protocols.score_maps(maps, dict(ann.gt_maps()), protocols.get("sslalign"))
    assert alone["instance_naming"] == "per_sample" and alone["iIoU"] == 0.5


def test_flickr_names_form_one_instance_like_the_official_loops():
    # `<id>.mp4` has no `_`: short_name is "" for every clip, so the whole set is one instance
    gt = union_map([[0, 0, 1, 0.25]])
    maps = {"111": gt.copy(), "222": 1 - gt}
    r = protocols.score_maps(maps, {"111": gt, "222": gt}, protocols.get("sslalign_bilinear"),
                             instance_naming="flickr")
    names = ["111.mp4", "222.mp4"]
    ref = official_sslalign("lvs_other", list(maps.values()), [gt, gt], names)
    _assert_same(r, ref, ["111", "222"])
    assert r["n_instances"] == 1 and r["cIoU"] == 0.5 and r["iIoU"] == 0.0


def test_undefined_ciou_is_a_miss_where_the_official_mean_is_nan():
    # an all-zero GT and a flat map: nothing is predicted, cIoU = 0/0
    flat, empty, gt = (np.full((7, 7), 0.3, np.float32), np.zeros((224, 224), np.float32),
                       union_map([[0, 0, 1, 0.25]]))
    good = gt.copy()
    ids = ["aaaaaaaaaaa_000000", "bbbbbbbbbbb_000000"]
    ref = official_sslalign("lvs_vggss", [flat, good], [empty, gt],
                            [metrics.vggss_official_name(i) for i in ids])
    assert math.isnan(ref["per_sample"][0]) and math.isnan(ref["mean_cIoU"]) and math.isnan(ref["iIoU"])
    r = protocols.score_maps(dict(zip(ids, [flat, good], strict=True)),
                             dict(zip(ids, [empty, gt], strict=True)), protocols.get("sslalign"),
                             instance_naming="vggss")
    assert math.isnan(r["per_sample"][ids[0]]) and r["n_undefined"] == 1
    assert r["mean_cIoU"] == 1.0  # the defined clip
    assert r["cIoU"] == ref["cIoU"] == 0.5  # both count the NaN as a miss
    assert r["iIoU"] == 0.5 and r["iAUC"] == r["AUC"]  # SoundLens: a miss; official: NaN
