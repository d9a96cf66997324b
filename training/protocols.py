"""Evaluation protocols: how each official evaluator turns a native heatmap into a binary map.

A `Protocol` is data (official_repos.md §7.1): upsampling, normalisation, threshold rule,
comparator, OGL weight, GT box rule. Each preset reproduces one official loop (table §1.2):

| preset | official loop | upsampling to 224 | normalisation | threshold | comparator |
|---|---|---|---|---|---|
| ezvsl | stoneMo/EZ-VSL test.py::validate | bilinear, align_corners | min-max | median | >= |
| slavc | stoneMo/SLAVC test.py::validate | bicubic, align_corners | fixed range, then min-max | median | >= |
| lvs | hche11/Localizing-Visual-Sounds-the-Hard-Way test.py::main | cv2 INTER_LINEAR | 1 - minmax(-x)
    | median | > (values >= 1 kept) |
| sslalign | kaistmm/SSLalignment test.py::validate_lvs, VGG-SS branch | cv2 INTER_LINEAR | 1 - minmax(-x)
    | median (+ adaptive) | > |
| sslalign_bilinear | SSLalignment test.py::validate_lvs, other sets | bilinear, align_corners
    | 1 - minmax(-x) | median (+ adaptive) | > |
| sslalign_others | SSLalignment test.py::validate (EZ-VSL/SLAVC/FNAC checkpoints) | bilinear, align_corners
    | min-max | median (+ adaptive) | > |
| jsa | InhoKim429/JSA test_model.py::validate_img_aud | bicubic | min-max | fixed 0.6 | >= |
| htf | denfed/heartheflow train.py::test_step | cv2 INTER_CUBIC | min-max | median | > (values >= 1 kept) |

All maps are float32 from the upsampling on, as in the official loops. `validate_lvs` (SSL-Align's
own and LVS models) and `validate` (other methods' checkpoints) differ only in the normalisation
of the upsampled map; `1 - minmax(-x)` equals `minmax(x)` up to float32 rounding, which moves a
few pixels across a tied median. The SSL-Align presets report iIoU / iAUC over instances formed
as the official loop forms them from the dataset's file names (`training.metrics.instances`).

`score_maps` scores a whole set; it takes maps from files or from a model alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from soundlens.training import metrics
from soundlens.training.metrics.thresholds import adaptive_threshold, median_threshold, minmax

Interpolation = Literal["bilinear_align_corners", "bicubic_align_corners", "bicubic", "cv2_linear",
                        "cv2_cubic"]
Normalisation = Literal["minmax", "minmax_inverted", "fixed_range"]
ThresholdRule = Literal["median", "fixed", "adaptive"]
GtClip = Literal["clip", "max0"]
_EXTRAS = ("adaptive", "iiou", "slavc")


@dataclass(frozen=True)
class Protocol:
    """One official evaluator's settings.

    Attributes:
        name: preset name.
        interpolation: how the native map is resized to `size` x `size`.
        normalisation: "minmax"; "minmax_inverted" = 1 - minmax(-x), LVS's and SSL-Align's
            spelling (equal up to float rounding, but a flat map becomes 1 + x); "fixed_range" =
            SLAVC: scores mapped from `score_range` to [0, 1] (confidence is taken on these),
            then min-max (its `--relative_prediction`).
        threshold: "median" (sorted index N // 2), "fixed" (`threshold_value`) or "adaptive"
            (predicted area = GT area, §2.4).
        threshold_value: the fixed threshold (JSA: 0.6).
        comparator: ">" or ">=" against the threshold.
        ones_stay_positive: LVS/HTF set `v > thr` to 1, then zero only `v < 1` and keep
            `v >= 0.5`, so pixels already >= 1 stay positive even at a threshold of 1.
        ogl_alpha: weight of the AV map when fused with an object map (None: no OGL).
        gt_clip: VGG-SS box rule: "clip" = int(clip(b, 0, 1) * 224), "max0" = int(224 * max(b, 0)).
        size: map side in pixels (224 in every repo).
        score_range: fixed range of the AV scores ("fixed_range" only), e.g. ±1/τ.
        object_range: fixed range of the OGL object map ("fixed_range" only).
        extras: extra reports: "adaptive" (cIoU_adap, AUC_adap), "iiou", "slavc" (AP, max-F1, LocAcc).
        source: where the settings come from.
    """

    name: str
    interpolation: Interpolation
    normalisation: Normalisation
    threshold: ThresholdRule = "median"
    threshold_value: float | None = None
    comparator: Literal[">", ">="] = ">="
    ones_stay_positive: bool = False
    ogl_alpha: float | None = None
    gt_clip: GtClip = "clip"
    size: int = 224
    score_range: tuple[float, float] | None = None
    object_range: tuple[float, float] | None = None
    extras: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if self.threshold == "fixed" and self.threshold_value is None:
            raise ValueError(f"protocol {self.name}: a fixed threshold needs threshold_value")
        if self.normalisation == "fixed_range" and self.score_range is None:
            raise ValueError(f"protocol {self.name}: fixed_range needs score_range")
        if self.comparator not in (">", ">="):
            raise ValueError(f"protocol {self.name}: comparator must be '>' or '>='")
        unknown = set(self.extras) - set(_EXTRAS)
        if unknown:
            raise ValueError(f"protocol {self.name}: unknown extras {sorted(unknown)}")


_TAU = 0.03  # SLAVC's temperature: AV scores are cosine / τ, so they lie in ±1/τ (§2.2)

_PRESETS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("ezvsl", "bilinear_align_corners", "minmax", comparator=">=", ogl_alpha=0.4,
             source="stoneMo/EZ-VSL test.py validate + utils.Evaluator (official_repos.md §2.1)"),
    Protocol("slavc", "bicubic_align_corners", "fixed_range", comparator=">=", ogl_alpha=0.9,
             score_range=(-1 / _TAU, 1 / _TAU), object_range=(0.0, 2.5), extras=("slavc",),
             source="stoneMo/SLAVC test.py validate --relative_prediction + EvaluatorFull (§2.2, §3.4)"),
    Protocol("lvs", "cv2_linear", "minmax_inverted", comparator=">", ones_stay_positive=True, gt_clip="max0",
             source="hche11/Localizing-Visual-Sounds-the-Hard-Way test.py main (§2.3)"),
    Protocol("sslalign", "cv2_linear", "minmax_inverted", comparator=">", ogl_alpha=0.4,
             extras=("adaptive", "iiou"),
             source="kaistmm/SSLalignment test.py validate_lvs, VGG-SS branch: SSL-Align's own and LVS "
                    "checkpoints (§2.4)"),
    Protocol("sslalign_bilinear", "bilinear_align_corners", "minmax_inverted", comparator=">", ogl_alpha=0.4,
             extras=("adaptive", "iiou"),
             source="kaistmm/SSLalignment test.py validate_lvs, sets other than VGG-SS: SSL-Align's own and "
                    "LVS checkpoints (§2.4)"),
    Protocol("sslalign_others", "bilinear_align_corners", "minmax", comparator=">", ogl_alpha=0.4,
             extras=("adaptive", "iiou"),
             source="kaistmm/SSLalignment test.py validate: EZ-VSL, SLAVC, FNAC checkpoints, every set; "
                    "utils.normalize_img(x), --alpha 0.4 (§2.4)"),
    Protocol("jsa", "bicubic", "minmax", threshold="fixed", threshold_value=0.6, comparator=">=",
             ogl_alpha=0.4, source="InhoKim429/JSA test_model.py validate_img_aud (§2.8)"),
    Protocol("htf", "cv2_cubic", "minmax", comparator=">", ones_stay_positive=True, gt_clip="max0",
             source="denfed/heartheflow train.py test_step (§2.6)"),
)}


def get(name: str) -> Protocol:
    """The preset called `name`; KeyError naming the available ones otherwise."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown protocol '{name}'; available: {', '.join(available())}") from None


def available() -> list[str]:
    """Preset names, sorted."""
    return sorted(_PRESETS)


def upsample(native_map: np.ndarray, protocol: Protocol) -> np.ndarray:
    """Resize a native [h, w] map to [size, size] float32 with the protocol's interpolation.

    The map is cast to float32 first (what the official models emit). cv2 modes call
    `cv2.resize`; the others `torch.nn.functional.interpolate` on a [1, 1, h, w] tensor.
    """
    return upsample_batch([native_map], protocol)[0]


def upsample_batch(native_maps: Sequence[np.ndarray], protocol: Protocol) -> np.ndarray:
    """`upsample` for B maps of one shape [h, w] at once -> [B, size, size] float32.

    Torch modes run as one [B, 1, h, w] call: per-map results are bitwise the same as one at a
    time, and one call avoids the per-call thread start-up that dominates 224 x 224 outputs.
    """
    m = np.ascontiguousarray(np.stack([np.asarray(x, dtype=np.float32) for x in native_maps]))
    if m.ndim != 3:
        raise ValueError(f"a heatmap must be 2-D [h, w], got shape {m.shape[1:]}")
    size = protocol.size
    if protocol.interpolation.startswith("cv2_"):
        import cv2  # cv2 and torch only to upsample: scoring saved maps stays numpy-only

        flag = cv2.INTER_LINEAR if protocol.interpolation == "cv2_linear" else cv2.INTER_CUBIC
        return np.stack([cv2.resize(x, dsize=(size, size), interpolation=flag) for x in m])
    import torch  # only to upsample, like cv2 above
    import torch.nn.functional as F

    mode, align = {"bilinear_align_corners": ("bilinear", True), "bicubic_align_corners": ("bicubic", True),
                   "bicubic": ("bicubic", False)}[protocol.interpolation]
    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(m)[:, None], size=(size, size), mode=mode, align_corners=align)
    return out[:, 0].numpy()


def _fixed(x: np.ndarray, lo_hi: tuple[float, float]) -> np.ndarray:
    lo, hi = lo_hi
    return (x - lo) / (hi - lo)


def normalize(map_224: np.ndarray, protocol: Protocol, object_224: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Normalise an upsampled map (optionally OGL-fused) as the protocol's evaluator does.

    Args:
        map_224: [size, size] float32 upsampled AV map (raw scores).
        protocol: the protocol.
        object_224: optional [size, size] upsampled object map, fused with `ogl_alpha`
            (§3.3: minmax(α·AV + (1-α)·OBJ) of the normalised maps; SLAVC fuses fixed-range scores).

    Returns:
        (pred, scores): `pred` is the map that gets thresholded; `scores` is the fixed-range map
        SLAVC takes its confidence from (equal to `pred` for the other normalisations).
    """
    if object_224 is not None and protocol.ogl_alpha is None:
        raise ValueError(f"protocol {protocol.name} has no OGL fusion (ogl_alpha is None)")
    a = protocol.ogl_alpha
    if protocol.normalisation == "fixed_range":
        scores = _fixed(map_224, protocol.score_range)
        if object_224 is not None:
            scores = scores * a + _fixed(object_224, protocol.object_range or (0.0, 1.0)) * (1 - a)
        return minmax(scores), scores
    if protocol.normalisation == "minmax_inverted":
        def norm(x):
            return 1 - minmax(-x)
    else:
        norm = minmax
    pred = norm(map_224)
    if object_224 is not None:
        pred = minmax(pred * a + norm(object_224) * (1 - a))
    return pred, pred


def threshold_of(pred: np.ndarray, protocol: Protocol, gt: np.ndarray | None = None, rule: str | None = None
                 ) -> float:
    """The binarisation threshold of a normalised map under `rule` (default: the protocol's)."""
    rule = rule or protocol.threshold
    if rule == "median":
        return median_threshold(pred)
    if rule == "fixed":
        return float(protocol.threshold_value)
    if gt is None:
        raise ValueError("the adaptive threshold needs the ground-truth map")
    return adaptive_threshold(pred, gt)


def binarize_normalized(pred: np.ndarray, protocol: Protocol, gt: np.ndarray | None = None,
                        rule: str | None = None) -> np.ndarray:
    """[size, size] bool positives of an already normalised map (see `binarize`)."""
    thr = pred.dtype.type(threshold_of(pred, protocol, gt, rule))  # compare in the map's dtype
    positive = pred > thr if protocol.comparator == ">" else pred >= thr
    if protocol.ones_stay_positive:
        positive |= pred >= 1
    return positive


def binarize(map_224: np.ndarray, protocol: Protocol, gt: np.ndarray | None = None) -> np.ndarray:
    """Normalise an upsampled [size, size] map and threshold it; returns a bool map.

    `gt` is needed only by the adaptive rule.
    """
    return binarize_normalized(normalize(np.asarray(map_224, dtype=np.float32), protocol)[0], protocol, gt)


def _normalized_maps(ids: list[str], maps: Mapping[str, np.ndarray], protocol: Protocol,
                     object_maps: Mapping[str, np.ndarray] | None, chunk: int = 256):
    """Yield (id, pred, scores) in `ids` order, upsampling same-shape maps in chunks."""
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        up = _upsample_grouped(part, maps, protocol)
        obj = None if object_maps is None else _upsample_grouped(part, object_maps, protocol)
        for sample_id in part:
            pred, scores = normalize(up[sample_id], protocol, None if obj is None else obj[sample_id])
            yield sample_id, pred, scores


def _upsample_grouped(ids: list[str], maps: Mapping[str, np.ndarray],
                      protocol: Protocol) -> dict[str, np.ndarray]:
    arrays = {i: np.asarray(maps[i]) for i in ids}  # read each (possibly lazy) map once
    by_shape: dict[tuple, list[str]] = {}
    for sample_id, m in arrays.items():
        by_shape.setdefault(m.shape, []).append(sample_id)
    out = {}
    for group in by_shape.values():
        out.update(zip(group, upsample_batch([arrays[i] for i in group], protocol), strict=True))
    return out


def _ciou_summary(values: list[float]) -> dict:
    """n, cIoU (fraction >= 0.5), AUC, mean cIoU, mcIoU and the number of undefined (NaN) cIoUs."""
    return {"n": len(values), "cIoU": metrics.fraction_at_least(values), "AUC": metrics.auc(values),
            "mean_cIoU": metrics.mean_ciou(values), "mcIoU": metrics.mciou(values),
            "n_undefined": int(np.isnan(values).sum()) if values else 0}


def pointing_hits(maps: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray | None],
                  protocol: Protocol) -> dict[str, bool]:
    """The pointing game per sounding sample: is the peak of the map, upsampled with the protocol's
    interpolation to its size x size frame, on a ground-truth pixel (`metrics.peak_on_mask`)?
    Samples whose GT is None (silent) are skipped."""
    ids = [i for i in gts if gts[i] is not None]
    hits: dict[str, bool] = {}
    for start in range(0, len(ids), 256):
        part = ids[start:start + 256]
        up = _upsample_grouped(part, maps, protocol)
        hits.update((i, metrics.peak_on_mask(up[i], gts[i])) for i in part)
    return hits


def instance_key_for(gts: Mapping, instance_naming: str | None = None) -> Callable[[str], str]:
    """The iIoU instance key of a scoring run (official_repos.md §2.4, `metrics.instances`).

    `instance_naming` when given; else the naming the GT mapping carries (an
    `AnnotationSet.gt_maps` view knows its dataset: VGG-SS one instance per clip, Flickr the
    whole set, IS3 / AVSBench per image name); else one instance per sample.
    """
    return metrics.instance_key_fn(_instance_naming(gts, instance_naming))


def _instance_naming(gts: Mapping, instance_naming: str | None) -> str:
    return instance_naming or getattr(gts, "instance_naming", None) or "per_sample"


def _instance_scores(cious: dict, adaptive: dict, gts, group_key, instance_naming) -> dict:
    """iIoU / iAUC (and their adaptive pair) over the instances that `group_key` or the naming forms."""
    key = group_key or instance_key_for(gts, instance_naming)
    groups = metrics.group_cious(cious, key)
    out = {"iIoU": metrics.iiou(groups), "iAUC": metrics.iauc(groups), "n_instances": len(groups),
           "instance_naming": None if group_key else _instance_naming(gts, instance_naming)}
    if adaptive:
        groups_adap = metrics.group_cious(adaptive, key)
        out.update(iIoU_adap=metrics.iiou(groups_adap), iAUC_adap=metrics.iauc(groups_adap))
    return out


def score_maps(maps: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray | None], protocol: Protocol,
               object_maps: Mapping[str, np.ndarray] | None = None,
               group_key: Callable[[str], str] | None = None, instance_naming: str | None = None) -> dict:
    """Score native heatmaps against ground-truth maps under one protocol.

    Args:
        maps: {sample id: [h, w] native heatmap} (any size; a model's output or a file's).
        gts: {sample id: [size, size] GT map in [0, 1], or None for a non-sounding sample,
            which only SLAVC's extended metrics use}. Every id here needs a map.
        protocol: the protocol.
        object_maps: optional {id: [h, w] object map} for OGL fusion.
        group_key: iIoU instance key {id -> key}; overrides `instance_naming`.
        instance_naming: one of `metrics.INSTANCE_NAMINGS` ("vggss", "flickr", "image",
            "per_sample"); default: the naming `gts` carries (`AnnotationSet.gt_maps`), else
            "per_sample" (see `instance_key_for`).

    Returns:
        {"protocol", "n" (sounding samples scored), "cIoU" (fraction >= 0.5), "AUC", "mean_cIoU",
        "mcIoU", "n_undefined" (0/0 cIoUs), "ogl", "n_silent" (None GTs), "per_sample" {id: cIoU}}
        plus the protocol's extras; all scores are fractions in [0, 1]. With "iiou":
        "iIoU", "iAUC" (and "_adap"), "n_instances" and "instance_naming" (None for a custom key).

    A 0/0 cIoU (empty GT, nothing predicted) is NaN in `per_sample`; it counts as a miss in cIoU,
    AUC, iIoU and iAUC, and `mean_cIoU` averages the defined clips (`n_undefined` counts the rest).
    The official loops give NaN for mean cIoU, iIoU and iAUC then (docs/training.md §4.1).
    """
    missing = [k for k in gts if k not in maps]
    if missing:
        raise ValueError(f"{len(missing)} samples have no heatmap (e.g. {missing[:3]})")
    cious: dict[str, float] = {}
    adaptive: dict[str, float] = {}
    n_boxes: list[int] = []
    confs: list[float] = []
    conf_cious: list[float] = []
    n_silent = 0
    for sample_id, pred, scores in _normalized_maps(list(gts), maps, protocol, object_maps):
        gt = gts[sample_id]
        n_silent += gt is None
        if gt is not None:
            gt = np.asarray(gt)
            cious[sample_id] = metrics.ciou(binarize_normalized(pred, protocol), gt)
            if "adaptive" in protocol.extras:
                adaptive[sample_id] = metrics.ciou(binarize_normalized(pred, protocol, gt, "adaptive"), gt)
        if "slavc" in protocol.extras:
            n_boxes.append(0 if gt is None else 1)
            confs.append(metrics.confidence(scores))
            conf_cious.append(cious[sample_id] if gt is not None else 0.0)
    report = {"protocol": protocol.name, **_ciou_summary(list(cious.values())),
              "ogl": object_maps is not None, "n_silent": n_silent}
    if "adaptive" in protocol.extras:
        report.update(cIoU_adap=metrics.fraction_at_least(adaptive.values()),
                      AUC_adap=metrics.auc(adaptive.values()), per_sample_adap=adaptive)
    if "iiou" in protocol.extras:
        report.update(_instance_scores(cious, adaptive, gts, group_key, instance_naming))
    if "slavc" in protocol.extras:
        report.update(metrics.slavc_metrics(n_boxes, conf_cious, confs))
    report["per_sample"] = cious
    return report
