"""`soundlens eval`: score heatmaps against box annotations under an official protocol.

    soundlens eval --predictions MAPS.npz --data ANNOTATIONS --protocol P [--out report.json]
    soundlens eval --model CKPT --data SPEC --protocol P [--out report.json] [--save-maps MAPS.npz]

With --model the checkpoint runs over the data SPEC (a prepared folder with annotations, or
procedural[:N]); its native maps are scored exactly as an .npz of them would be (the same
`training.engine.score_annotated`), and cross-modal retrieval R@1/5/10 is added from
`model.embed` when the clips have class labels (official_repos.md §3.7).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from soundlens import models
from soundlens.models.errors import SoundLensError
from soundlens.models.jsonable import jsonable
from soundlens.tools.commands import add_backend_argument
from soundlens.training import protocols
from soundlens.training.splits import normalize_id

# Scalars printed in the table, in this order, when the report has them.
_ROWS = ("cIoU", "AUC", "mean_cIoU", "mcIoU", "hit_rate", "cIoU_adap", "AUC_adap", "iIoU",
         "iAUC", "iIoU_adap", "iAUC_adap", "AP", "max_F1", "LocAcc")


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", metavar="MAPS.npz",
                        help="npz mapping sample id -> 2-D native heatmap (any size)")
    source.add_argument("--model", metavar="CKPT",
                        help="a SoundLens checkpoint (or shipped name) to run over --data")
    parser.add_argument("--data", required=True, metavar="SPEC",
                        help="with --predictions, annotations: vggss.json-format file, Flickr boxes "
                             "JSON, AVSBench box JSON, a directory with Annotations/*.xml, or a benchmark "
                             "directory with annotations.json; with --model, a data SPEC: a folder with "
                             "frames/ + audio/ and annotations (DIR[,list=FILE][,ann=FILE]) or "
                             "procedural[:N][,seed=S,size=PX]")
    parser.add_argument("--protocol", default="ezvsl", choices=protocols.available(),
                        help="official evaluator to reproduce (default ezvsl)")
    parser.add_argument("--object-maps", metavar="OBJ.npz", help="object maps for OGL fusion (optional)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="score only annotated samples that have a heatmap (default: every one needs "
                             "one)")
    parser.add_argument("--out", metavar="REPORT.json", help="write the full report (per-sample cIoU too)")
    model = parser.add_argument_group("with --model")
    model.add_argument("--save-maps", "--save_maps", dest="save_maps", metavar="MAPS.npz",
                       help="also write the model's native maps (the --predictions format)")
    model.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
    model.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    add_backend_argument(model, default=None)
    model.add_argument("--workers", type=int, default=0, help="data-loading processes")
    model.add_argument("--no-retrieval", dest="retrieval", action="store_false",
                       help="skip the cross-modal retrieval R@K")


class NpzMaps(Mapping):
    """Read-only {normalised sample id: 2-D heatmap} over an .npz, reading each map on access.

    Keys are normalised with `training.splits.normalize_id` (`<id>.jpg`, `<ytid>_<ms>_<ms>`
    match the annotation ids). Errors name the file and the fix.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._npz = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise SoundLensError(f"predictions file {path} does not exist") from None
        except (ValueError, OSError) as err:
            raise SoundLensError(f"{path} is not a readable .npz of heatmaps ({err}); save "
                                 "with numpy.savez") from None
        if not hasattr(self._npz, "files"):
            raise SoundLensError(f"{path} holds one array, not an .npz of id -> heatmap; save "
                                 "with numpy.savez")
        self._keys: dict[str, str] = {}
        for key in self._npz.files:
            sample_id = normalize_id(key)
            if sample_id in self._keys:
                raise SoundLensError(f"{path}: keys '{key}' and '{self._keys[sample_id]}' name "
                                     "the same sample")
            self._keys[sample_id] = key

    def __getitem__(self, sample_id: str):
        key = self._keys[sample_id]
        value = self._npz[key]
        m = np.squeeze(value)
        if m.ndim != 2:
            raise SoundLensError(f"{self.path}: map '{key}' has shape {value.shape}; each map "
                                 "must be 2-D [h, w]")
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
    protocol = protocols.get(args.protocol)
    objects = NpzMaps(args.object_maps) if args.object_maps else None
    try:
        if args.model is not None:
            report = _evaluate_model(args, protocol, objects)
        else:
            maps = NpzMaps(args.predictions)
            try:
                report = _evaluate(args, protocol, maps, objects)
            finally:
                maps.close()
    finally:
        if objects is not None:
            objects.close()
    _print_table(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(jsonable(report), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _warn_lines(caught) -> None:
    for w in caught:  # corrupt boxes, empty GT maps: one plain line each
        print(f"soundlens eval: warning: {w.message}", file=sys.stderr)


def _evaluate(args, protocol, maps: NpzMaps, objects: NpzMaps | None) -> dict:
    # torch and PyAV (engine, datasets) only once there is something to score
    from soundlens.training.datasets import load_annotations
    from soundlens.training.engine import score_annotated

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann = load_annotations(args.data)
    _warn_lines(caught)
    report = score_annotated(ann, maps, protocol, object_maps=objects, allow_missing=args.allow_missing,
                             maps_source=str(args.predictions))
    report.update(data=str(args.data), predictions=str(args.predictions), retrieval=None)
    return report


def _evaluate_model(args, protocol, objects: NpzMaps | None) -> dict:
    # torch only when a model is evaluated
    from soundlens.models.devices import pick_device
    from soundlens.models.inference import for_inference
    from soundlens.training.data import eval_data
    from soundlens.training.datasets import load_annotations
    from soundlens.training.engine import annotations_of, predict, retrieval_report, score_annotated

    if args.batch_size < 1:
        raise SoundLensError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = pick_device(args.device)
    model = models.load(args.model, device=device)
    if args.backend is not None:
        model = for_inference(model, args.backend, device=device, checkpoint=None, fallback=False)
    data = eval_data(args.data, allow_missing=args.allow_missing)
    if data.annotations is not None:  # re-read with warnings on, as the --predictions path does
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data.annotations = load_annotations(data.spec.annotations)
        _warn_lines(caught)
    print(f"soundlens eval: running {model.method} ({args.model}) over {len(data.dataset)} "
          f"clips of {args.data}",
          file=sys.stderr)
    pred = predict(model, data.dataset, batch_size=args.batch_size, embed=args.retrieval,
                   workers=args.workers, progress=True)
    if args.save_maps:
        out = Path(args.save_maps)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, **pred.maps)
        print(f"wrote {len(pred.maps)} native maps to {out}", file=sys.stderr)
    ann = annotations_of(data, pred)
    report = score_annotated(ann, pred.maps, protocol, object_maps=objects, allow_missing=args.allow_missing,
                             maps_source=str(args.data))
    retrieval = (retrieval_report(pred, ann, [i for i in ann.ids if i in pred.maps]) if args.retrieval
                 else None)
    report.update(data=str(args.data), model={"checkpoint": str(args.model), **models.describe(model)},
                  retrieval=retrieval)
    return report


def _print_table(report: dict) -> None:
    ogl = " (AV+OGL)" if report["ogl"] else ""
    print(f"protocol {report['protocol']}{ogl} on {report['data']}: {report['n']} samples")
    print(f"  {'metric':<11} {'value':>7}")
    for key in _ROWS:
        if key in report:
            print(f"  {key:<11} {100 * report[key]:7.2f}")
    retrieval = report.get("retrieval")
    if retrieval:
        for key, value in retrieval.items():
            if "@" in key:
                print(f"  {key:<11} {100 * value:7.2f}")
    elif "model" in report:
        print("  (no retrieval: it needs class labels of at least 2 classes)")
    notes = []
    if report["n_missing"]:
        notes.append(f"{report['n_missing']} annotated samples had no heatmap and were skipped")
    if report["n_unannotated_maps"]:
        notes.append(f"{report['n_unannotated_maps']} heatmaps had no annotation and were ignored")
    if report["empty_gt"]:
        notes.append(f"{len(report['empty_gt'])} samples have an all-zero GT (cIoU 0): "
                     f"{report['empty_gt'][:3]}")
    if report["n_silent"]:
        used = " (they count in AP / max-F1)" if "AP" in report else ""
        notes.append(f"{report['n_silent']} non-sounding samples (no boxes) are left out of cIoU{used}")
    if report["n_undefined"]:
        notes.append(f"{report['n_undefined']} cIoUs are 0/0 (empty GT, empty prediction); counted as misses")
    for note in notes:
        print(f"  note: {note}")
    print("  (values in %; cIoU = fraction of samples with cIoU >= 0.5)")
