"""`soundlens eval`: score saved heatmaps against box annotations under an official protocol."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from tools.errors import SoundLensError

# Scalars printed in the table, in this order, when the report has them.
_ROWS = ("cIoU", "AUC", "mean_cIoU", "mcIoU", "cIoU_adap", "AUC_adap", "iIoU", "iAUC", "iIoU_adap",
         "iAUC_adap", "AP", "max_F1", "LocAcc")


def add_arguments(parser) -> None:
    from training import protocols

    parser.add_argument("--predictions", required=True, metavar="MAPS.npz",
                        help="npz mapping sample id -> 2-D native heatmap (any size)")
    parser.add_argument("--data", required=True, metavar="SPEC",
                        help="annotations: vggss.json-format file, Flickr boxes JSON, AVSBench box JSON, a "
                             "directory with Annotations/*.xml, or a benchmark directory with annotations.json")
    parser.add_argument("--protocol", default="ezvsl", choices=protocols.available(),
                        help="official evaluator to reproduce (default ezvsl)")
    parser.add_argument("--object-maps", metavar="OBJ.npz", help="object maps for OGL fusion (optional)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score only annotated samples that have a heatmap (default: every one needs one)")
    parser.add_argument("--out", metavar="REPORT.json", help="write the full report (per-sample cIoU too)")


class NpzMaps(Mapping):
    """Read-only {normalised sample id: 2-D heatmap} over an .npz, reading each map on access.

    Keys are normalised with `training.splits.normalize_id` (`<id>.jpg`, `<ytid>_<ms>_<ms>`
    match the annotation ids). Errors name the file and the fix.
    """

    def __init__(self, path: str) -> None:
        import numpy as np

        from training.splits import normalize_id

        self.path = path
        try:
            self._npz = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise SoundLensError(f"predictions file {path} does not exist") from None
        except (ValueError, OSError) as err:
            raise SoundLensError(f"{path} is not a readable .npz of heatmaps ({err}); save with numpy.savez") from None
        if not hasattr(self._npz, "files"):
            raise SoundLensError(f"{path} holds one array, not an .npz of id -> heatmap; save with numpy.savez")
        self._keys: dict[str, str] = {}
        for key in self._npz.files:
            sample_id = normalize_id(key)
            if sample_id in self._keys:
                raise SoundLensError(f"{path}: keys '{key}' and '{self._keys[sample_id]}' name the same sample")
            self._keys[sample_id] = key

    def __getitem__(self, sample_id: str):
        import numpy as np

        key = self._keys[sample_id]
        value = self._npz[key]
        m = np.squeeze(value)
        if m.ndim != 2:
            raise SoundLensError(f"{self.path}: map '{key}' has shape {value.shape}; each map must be 2-D [h, w]")
        return m

    def __contains__(self, sample_id: object) -> bool:  # without reading the array
        return sample_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def close(self) -> None:
        self._npz.close()


def run(args) -> int:
    from training import protocols

    protocol = protocols.get(args.protocol)
    maps = NpzMaps(args.predictions)
    objects = NpzMaps(args.object_maps) if args.object_maps else None
    try:
        report = _evaluate(args, protocol, maps, objects)
    finally:
        maps.close()
        if objects is not None:
            objects.close()
    _print_table(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_jsonable(report), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _evaluate(args, protocol, maps: NpzMaps, objects: NpzMaps | None) -> dict:
    from training import protocols
    from training.datasets import load_annotations

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann = load_annotations(args.data)
    for w in caught:  # corrupt boxes, empty GT maps: one plain line each
        print(f"soundlens eval: warning: {w.message}", file=sys.stderr)
    have = [i for i in ann.ids if i in maps and (objects is None or i in objects)]
    have_set = set(have)
    missing = [i for i in ann.ids if i not in have_set]
    if missing and not args.allow_missing:
        raise SoundLensError(f"{len(missing)} of {len(ann)} annotated samples have no heatmap (e.g. {missing[:3]}); "
                             "add them or pass --allow-missing to score the rest")
    if not have:
        raise SoundLensError(f"no heatmap in {args.predictions} matches an id of {args.data}; check the npz keys")
    if objects is not None and protocol.ogl_alpha is None:
        raise SoundLensError(f"protocol {protocol.name} has no OGL fusion; drop --object-maps or pick another")
    gts = ann.gt_maps(protocol.gt_clip, have, silent_as_none=True)  # box-less samples are non-sounding
    report = protocols.score_maps(maps, gts, protocol, object_maps=objects)
    extra = sorted(set(maps) - set(ann.ids))
    report.update(data=str(args.data), annotation_kind=ann.kind, predictions=str(args.predictions),
                  n_missing=len(missing), n_unannotated_maps=len(extra),
                  empty_gt=[i for i in ann.empty_gt if i in have_set])
    return report


def _jsonable(value):
    """Plain JSON: numpy scalars -> Python numbers, NaN -> null (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _print_table(report: dict) -> None:
    ogl = " (AV+OGL)" if report["ogl"] else ""
    print(f"protocol {report['protocol']}{ogl} on {report['data']}: {report['n']} samples")
    print(f"  {'metric':<11} {'value':>7}")
    for key in _ROWS:
        if key in report:
            print(f"  {key:<11} {100 * report[key]:7.2f}")
    notes = []
    if report["n_missing"]:
        notes.append(f"{report['n_missing']} annotated samples had no heatmap and were skipped")
    if report["n_unannotated_maps"]:
        notes.append(f"{report['n_unannotated_maps']} heatmaps had no annotation and were ignored")
    if report["empty_gt"]:
        notes.append(f"{len(report['empty_gt'])} samples have an all-zero GT (cIoU 0): {report['empty_gt'][:3]}")
    if report["n_silent"]:
        used = " (they count in AP / max-F1)" if "AP" in report else ""
        notes.append(f"{report['n_silent']} non-sounding samples (no boxes) are left out of cIoU{used}")
    if report["n_undefined"]:
        notes.append(f"{report['n_undefined']} cIoUs are 0/0 (empty GT, empty prediction); counted as misses")
    for note in notes:
        print(f"  note: {note}")
    print("  (values in %; cIoU = fraction of samples with cIoU >= 0.5)")
