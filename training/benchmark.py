"""`soundlens bench accuracy`: train every method with one budget on the procedural benchmark and
score it on one held-out test split; writes a Markdown + JSON table and PNG plots.

The default budget is the one the learning test uses (tests/models/test_learning.py: lite
encoder, 112 px, 2000 pairs, 3 epochs, batch 32, Adam lr 1e-3 except the method's Recipe (short_run_lr),
the method's Recipe (short_run_options)), so the table shows what each method reaches on a CPU-sized run,
not the papers' numbers. The test split has 2-3 objects per scene, so the pointing game has a baseline: a
random visible object is right about 42 % of the time.

Outputs in OUT: accuracy.json, accuracy.md, success_curve.png (fraction of samples with cIoU >= t
for t = 0 ... 1, official_repos.md §3.1), gallery.png (heatmaps over test frames, GT boxes in
green), runs/<method>/ (each training run; an interrupted benchmark resumes them).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from soundlens import models
from soundlens.models.devices import pick_device
from soundlens.models.errors import SoundLensError
from soundlens.models.jsonable import jsonable
from soundlens.training import metrics, protocols
from soundlens.training.data import eval_data
from soundlens.training.engine import TrainConfig, annotations_of, predict, retrieval_report, score_annotated
from soundlens.training.main import train
from soundlens.training.metrics import AUC_THRESHOLDS
from soundlens.training.params import RunConfig, short_run_lr, short_run_options, short_run_schedule

# The same colours for a method in every plot (RGB).
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
TEST_SEED = 10_000  # the learning test's held-out seed; train/val use seed and seed + 1_000_003


@dataclass
class AccuracyConfig:
    """One benchmark run; every method gets the same budget."""

    methods: tuple[str, ...] = ("ezvsl", "lvs")
    data: str = "procedural"
    pairs: int = 2000
    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: each method's the method's Recipe (short_run_lr)
    encoder: str = "lite"
    image_size: int = 112
    test_pairs: int = 300
    test_objects: tuple[int, int] = (2, 3)
    val_pairs: int = 100
    protocol: str = "sslalign"  # median cIoU/AUC plus the adaptive (area-matched) threshold, §2.4
    seed: int = 0
    seeds: tuple[int, ...] = ()  # several seeds: mean ± std and min per method (empty: just `seed`)
    device: str | None = None
    workers: int = 0
    gallery: int = 6
    out: str = "bench_results/accuracy"
    progress: bool = True
    short_run_options: bool = True  # the method's Recipe (short_run_options) (False: every paper default)
    command: str = ""  # the command line that made it, for the report
    extra: dict = field(default_factory=dict)


def _train_spec(cfg: AccuracyConfig) -> str:
    if cfg.data != "procedural":
        raise SoundLensError(f"bench accuracy --data {cfg.data}: only 'procedural' is supported "
                             "(every method needs the same annotated held-out split); train on other data "
                             "with 'soundlens train'")
    return f"procedural:{cfg.pairs},size={cfg.image_size},seed={cfg.seed}"


def _test_spec(cfg: AccuracyConfig) -> str:
    lo, hi = cfg.test_objects
    return f"procedural:{cfg.test_pairs},size={cfg.image_size},seed={TEST_SEED},objects={lo}-{hi}"


def run_accuracy(cfg: AccuracyConfig) -> dict:
    """Train and score each method for each seed; write the outputs; return the JSON document.

    With several seeds, each seed's runs go to OUT/seed<S>/ and every metric is reported as mean,
    sample standard deviation and minimum over the seeds (`results[i]["spread"]`)."""
    if not cfg.methods:
        raise SoundLensError("--methods is empty; name at least one method (see 'soundlens models')")
    for m in cfg.methods:
        models.method_entry(m)
    _train_spec(cfg)  # only procedural data: fail before any work
    if cfg.pairs < cfg.batch_size:
        raise SoundLensError(f"--pairs {cfg.pairs} is smaller than --batch-size {cfg.batch_size}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    test = eval_data(_test_spec(cfg))
    seeds = tuple(cfg.seeds) or (cfg.seed,)
    per_seed, gallery_maps, ann = {}, {}, None
    gallery_items = [test.dataset[i] for i in range(min(cfg.gallery, len(test.dataset)))]
    for seed in seeds:
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        seed_out = out / f"seed{seed}" if len(seeds) > 1 else out
        rows, maps, ann = _run_methods(seed_cfg, test, gallery_items, seed_out)
        per_seed[seed] = rows
        if not gallery_maps:
            gallery_maps = maps
    results = per_seed[seeds[0]] if len(seeds) == 1 else aggregate_seeds(per_seed)
    doc = {
        "benchmark": "accuracy", "command": cfg.command, "config": asdict(cfg),
        "train_data": _train_spec(cfg), "test_data": _test_spec(cfg), "protocol": cfg.protocol,
        "n_test": len(test.dataset), "seeds": list(seeds), "device": str(pick_device(cfg.device)),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "results": results,
    }
    (out / "accuracy.json").write_text(json.dumps(jsonable(doc), indent=2) + "\n")
    (out / "accuracy.md").write_text(markdown_table(doc))
    plot_success(results, out / "success_curve.png")
    draw_gallery(gallery_items, ann, gallery_maps, out / "gallery.png")
    return doc


def _run_methods(cfg: AccuracyConfig, test, gallery_items: list[dict], out: Path):
    """Train and score every method with `cfg.seed`; (result rows, gallery maps, annotations)."""
    proto = protocols.get(cfg.protocol)
    results, gallery_maps, ann = [], {}, None
    for k, method in enumerate(cfg.methods):
        run_dir = out / "runs" / method
        options = short_run_options(method) if cfg.short_run_options else {}
        lr = cfg.lr if cfg.lr is not None else short_run_lr(method)
        run = RunConfig(method=method, data=_train_spec(cfg), out=str(run_dir), encoder=cfg.encoder,
                        model=options, val_pairs=cfg.val_pairs, protocol=cfg.protocol, device=cfg.device,
                        # cIoU >= 0.5 is almost always 0 on these small objects (the median threshold
                        # marks half the frame), so it cannot pick an epoch; the pointing game can.
                        select_metric="hit_rate",
                        resume=(run_dir / "resume.safetensors").is_file(), progress=cfg.progress,
                        tensorboard=False,
                        train=TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=lr, seed=cfg.seed,
                                          num_workers=cfg.workers,
                                          lr_schedule=short_run_schedule(method) if cfg.short_run_options
                                          else "constant"))
        print(f"[{k + 1}/{len(cfg.methods)}] {method} (seed {cfg.seed})", flush=True)
        summary = train(run)
        ckpt = summary["best_path"] or summary["latest"]
        model = models.load(ckpt, device=pick_device(cfg.device))
        t0 = time.perf_counter()
        pred = predict(model, test.dataset, batch_size=64, embed=True, workers=cfg.workers)
        ann = annotations_of(test, pred)
        row = _score_row(method, options, lr, cfg, pred, ann, proto, test.spec.text)
        row.update(train_time_s=float(sum(h.get("train_time_s", 0.0) for h in summary["history"])),
                   eval_time_s=time.perf_counter() - t0, best_epoch=(summary["best"] or {}).get("epoch"),
                   checkpoint=ckpt, params=int(sum(p.numel() for p in model.parameters())))
        results.append(row)
        gallery_maps[method] = [pred.maps[it["id"]] for it in gallery_items]
        print(f"  {method}: cIoU {_pct(row['cIoU'])} AUC {_pct(row['AUC'])} hit {_pct(row['hit_rate'])} "
              f"a2i R@1 {_pct(row.get('a2i_R@1'))} | train {row['train_time_s']:.1f} s", flush=True)
        del model
    return results, gallery_maps, ann


def _score_row(method, options, lr, cfg, pred, ann, proto, source) -> dict:
    report = score_annotated(ann, pred.maps, proto, maps_source=source)
    retrieval = retrieval_report(pred, ann, [i for i in ann.ids if i in pred.maps]) or {}
    row = {
        "method": method, "seed": cfg.seed, "options": options, "lr": lr, "cIoU": report["cIoU"],
        "AUC": report["AUC"], "mean_cIoU": report["mean_cIoU"], "hit_rate": report["hit_rate"],
        "cIoU_adap": report.get("cIoU_adap"), "AUC_adap": report.get("AUC_adap"),
        **{k: v for k, v in retrieval.items() if "@" in k}, "epochs": cfg.epochs,
        "success_curve": [float(v) for v in metrics.success_curve(list(report["per_sample"].values()))],
    }
    if "per_sample_adap" in report:  # the protocol's adaptive threshold: the informative curve here
        row["success_curve_adap"] = [float(v)
                                     for v in metrics.success_curve(list(report["per_sample_adap"].values()))]
    return row


METRICS = ("cIoU", "AUC", "cIoU_adap", "AUC_adap", "mean_cIoU", "hit_rate", "a2i_R@1", "a2i_R@5", "a2i_R@10",
           "i2a_R@1", "i2a_R@5", "i2a_R@10")


def aggregate_seeds(per_seed: dict[int, list[dict]]) -> list[dict]:
    """One row per method over several seeds: each metric is the mean, with `spread[metric]` =
    {mean, std (sample, ddof 1), min, max, values}; curves are averaged; times summed."""
    seeds = list(per_seed)
    rows = []
    for i, first in enumerate(per_seed[seeds[0]]):
        runs = [per_seed[s][i] for s in seeds]
        row = {**first, "seed": seeds, "spread": {}, "per_seed": runs}
        for key in METRICS:
            values = [r.get(key) for r in runs]
            if any(v is None or not math.isfinite(v) for v in values):
                continue
            arr = np.asarray(values, dtype=float)
            row[key] = float(arr.mean())
            row["spread"][key] = {"mean": float(arr.mean()),
                                  "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                                  "min": float(arr.min()), "max": float(arr.max()), "values": values}
        for curve in ("success_curve", "success_curve_adap"):
            if all(curve in r for r in runs):
                row[curve] = [float(v) for v in np.mean([r[curve] for r in runs], axis=0)]
        row["train_time_s"] = float(sum(r["train_time_s"] for r in runs))
        rows.append(row)
    return rows


def spread_notes(results: list[dict], key: str = "hit_rate") -> list[str]:
    """For methods ranked by mean `key`: a note wherever a method's spread (max - min over seeds)
    is larger than its gap to the next method, so the ranking between them is not settled."""
    ranked = sorted((r for r in results if key in r.get("spread", {})),
                    key=lambda r: -r["spread"][key]["mean"])
    notes = []
    for a, b in zip(ranked, ranked[1:]):
        gap = a["spread"][key]["mean"] - b["spread"][key]["mean"]
        width = a["spread"][key]["max"] - a["spread"][key]["min"]
        if width > gap:
            notes.append(f"{a['method']} vs {b['method']}: {key} spread {100 * width:.1f} points "
                         f"over the seeds is larger than the gap {100 * gap:.1f}: their order is not "
                         "settled by these runs")
    return notes


def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}"


def _cell(row: dict, key: str) -> str:
    """'86.7' for one seed; '86.7 ± 2.1 (84.3)' (mean ± std (min), in %) over several."""
    spread = row.get("spread", {}).get(key)
    if spread is None:
        return _pct(row.get(key))
    return f"{100 * spread['mean']:.1f} ± {100 * spread['std']:.1f} ({100 * spread['min']:.1f})"


def _lrs(doc: dict) -> str:
    """'1e-3' or, when methods differ, '1e-3 (jsa 5e-05)': the most common rate, then the others."""
    rates = {r["method"]: r["lr"] for r in doc["results"]}
    if not rates:
        return "-"
    values = list(rates.values())
    common = max(set(values), key=values.count)
    others = ", ".join(f"{m} {v:g}" for m, v in rates.items() if v != common)
    return f"{common:g}" + (f" ({others})" if others else "")


def markdown_table(doc: dict) -> str:
    """The results as a Markdown table (values in %), with the command and settings."""
    cfg = doc["config"]
    seeds = doc.get("seeds") or [cfg["seed"]]
    several = len(seeds) > 1
    lines = [
        f"Trained on `{doc['train_data']}` ({cfg['encoder']} encoder, {cfg['epochs']} epochs, batch "
        f"{cfg['batch_size']}, Adam lr {_lrs(doc)}); tested on `{doc['test_data']}` ({doc['n_test']} scenes) "
        f"under the `{doc['protocol']}` protocol on {doc['device']} ({doc.get('machine', '?')}, "
        f"CPU capability {doc.get('cpu_capability', '?')}, {doc.get('threads', '?')} threads, torch "
        f"{doc.get('torch', '?')}), {doc['date']}; "
        + (f"seeds {', '.join(map(str, seeds))}: mean ± sample std (min)." if several
                               else f"seed {seeds[0]}."),
        "",
    ]
    adaptive = any(r.get("cIoU_adap") is not None for r in doc["results"])
    columns = ["cIoU", "AUC"] + (["cIoU_adap", "AUC_adap"] if adaptive else []) + [
        "mean_cIoU", "hit_rate", "a2i_R@1", "a2i_R@5", "a2i_R@10", "i2a_R@1", "i2a_R@5", "i2a_R@10"]
    titles = {"cIoU_adap": "adaptive cIoU", "AUC_adap": "adaptive AUC", "mean_cIoU": "mean cIoU",
              "hit_rate": "hit rate", "a2i_R@1": "a→i R@1", "a2i_R@5": "R@5", "a2i_R@10": "R@10",
              "i2a_R@1": "i→a R@1", "i2a_R@5": "R@5", "i2a_R@10": "R@10"}
    lines.append("| method | " + " | ".join(titles.get(c, c) for c in columns) + " | train time |")
    lines.append("|---|" + "---:|" * (len(columns) + 1))
    for r in doc["results"]:
        cells = [_cell(r, k) for k in columns]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {r['train_time_s']:.0f} s |")
    notes = spread_notes(doc["results"]) if several else []
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", "cIoU = fraction of test scenes with cIoU >= 0.5; AUC over cIoU thresholds 0..1; adaptive: "
              "the map thresholded so its area equals the box's (SSL-Align's protocol; the median threshold "
              "marks half the frame, far more than these objects, so plain cIoU >= 0.5 is rare); hit rate = "
              "heatmap peak inside the sounding object's box (a random visible object: ~42 %); R@K: "
              "retrieval by class over the test scenes. Values in %.", ""]
    options = {r["method"]: r["options"] for r in doc["results"] if r.get("options")}
    if options:
        lines += ["Short-run method options (the method's Recipe (short_run_options)): " + "; ".join(
            f"{m} {', '.join(f'{k}={v}' for k, v in o.items())}" for m, o in options.items()) + ".", ""]
    if doc.get("command"):
        lines += ["Command:", "", "```", doc["command"], "```", ""]
    return "\n".join(lines)


# --- plots: matplotlib when installed, else drawn with OpenCV ------------------------------------
def plot_success(results: list[dict], path: Path) -> Path:
    """Success rate (fraction of samples with cIoU >= t) against the threshold t, one line per method;
    with the adaptive (area-matched) threshold when every method has it, the informative one here."""
    x = np.asarray(AUC_THRESHOLDS)
    adaptive = bool(results) and all("success_curve_adap" in r for r in results)
    curve, auc_key = ("success_curve_adap", "AUC_adap") if adaptive else ("success_curve", "AUC")
    title = "Success rate vs cIoU threshold" + (" (adaptive)" if adaptive else "")
    try:
        import matplotlib  # optional, not a dependency: without it cv2 draws the plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # only after use('Agg')
    except ImportError:
        return _plot_success_cv2(results, x, path, curve, auc_key, title)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for k, r in enumerate(results):
        colour = tuple(c / 255 for c in PALETTE[k % len(PALETTE)])
        ax.plot(x, r[curve], marker="o", ms=3, color=colour, label=f"{r['method']} (AUC {_pct(r[auc_key])})")
    ax.set(xlabel="cIoU threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_success_cv2(results: list[dict], x: np.ndarray, path: Path, curve: str, auc_key: str,
                      title: str) -> Path:
    import cv2  # cv2 only to draw figures

    w, h, left, right, top, bottom = 640, 480, 70, 20, 40, 60
    img = np.full((h, w, 3), 255, np.uint8)
    pw, ph = w - left - right, h - top - bottom

    def px(xv, yv):
        return int(round(left + xv * pw)), int(round(top + (1 - yv) * ph))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for t in np.linspace(0, 1, 6):  # grid, ticks and labels
        cv2.line(img, px(t, 0), px(t, 1), (230, 230, 230), 1)
        cv2.line(img, px(0, t), px(1, t), (230, 230, 230), 1)
        cv2.putText(img, f"{t:.1f}", (px(t, 0)[0] - 12, top + ph + 20), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{t:.1f}", (left - 35, px(0, t)[1] + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, px(0, 1), px(1, 0), (0, 0, 0), 1)
    cv2.putText(img, "cIoU threshold", (left + pw // 2 - 50, h - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "success rate", (5, top - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (left + 120, 20), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for k, r in enumerate(results):
        colour = PALETTE[k % len(PALETTE)][::-1]  # BGR
        y = np.nan_to_num(np.asarray(r[curve], dtype=float))
        pts = np.array([px(a, b) for a, b in zip(x, y, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(v) for v in p), 3, colour, -1, cv2.LINE_AA)
        ly = top + 20 + 18 * k  # legend, top right
        cv2.line(img, (w - right - 190, ly - 4), (w - right - 170, ly - 4), colour, 2, cv2.LINE_AA)
        cv2.putText(img, f"{r['method']} (AUC {_pct(r[auc_key])})", (w - right - 165, ly), font,
                    0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)
    return path


def draw_gallery(items: list[dict], ann, maps_by_method: dict[str, list[np.ndarray]], path: Path,
                 cell: int = 160) -> Path:
    """A grid: the test frames with their GT box (first row), then one row of heatmap overlays per method."""
    # cv2, realtime's painter and the datasets (PyAV) only to draw the gallery
    import cv2
    from soundlens.realtime.overlay import OverlayPainter
    from soundlens.realtime.peaks import normalise
    from soundlens.training.datasets.gt import normalised_box_pixels

    label_w, font = 90, cv2.FONT_HERSHEY_SIMPLEX
    rows = [("frame", None), *((m, maps) for m, maps in maps_by_method.items())]
    painter = OverlayPainter()
    canvas = np.full((cell * len(rows), label_w + cell * max(len(items), 1), 3), 255, np.uint8)
    for r, (name, maps) in enumerate(rows):
        cv2.putText(canvas, name[:10], (5, r * cell + cell // 2), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for c, item in enumerate(items):
            frame = np.asarray(item["frame"], dtype=np.uint8)
            fh, fw = frame.shape[:2]
            if maps is not None:
                frame = painter.draw(frame, normalise(maps[c])[0], region=(0, 0, fw, fh))
            tile = cv2.resize(frame, (cell, cell), interpolation=cv2.INTER_AREA).copy()
            entry = ann.entries.get(item["id"])
            for box in entry.boxes if entry else ():
                x1, y1, x2, y2 = normalised_box_pixels(box, "clip", cell)
                cv2.rectangle(tile, (x1, y1), (max(x2 - 1, x1), max(y2 - 1, y1)), (0, 255, 0), 2)
            canvas[r * cell:(r + 1) * cell, label_w + c * cell:label_w + (c + 1) * cell] = tile
    cv2.imwrite(str(path), canvas[..., ::-1])
    return path
