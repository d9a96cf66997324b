"""Localisation, retrieval and segmentation metrics as pure numpy functions (official_repos.md §3)."""

from soundlens.training.metrics.avsbench import (
    frame_f_curves,
    frame_ious,
    fscore,
    fscore_per_batch,
    miou,
    miou_per_batch,
)
from soundlens.training.metrics.ciou import (
    AUC_THRESHOLDS,
    MCIOU_THRESHOLDS,
    auc,
    ciou,
    fraction_at_least,
    group_cious,
    iauc,
    iiou,
    image_group,
    mciou,
    mean_ciou,
    success_curve,
)
from soundlens.training.metrics.instances import (
    INSTANCE_NAMINGS,
    count_instances,
    instance_key,
    instance_key_fn,
    naming_for_kind,
    official_name,
    vggss_official_name,
)
from soundlens.training.metrics.pointing import peak_in_box, peak_on_mask
from soundlens.training.metrics.retrieval import cross_modal_recall, recall_at_k
from soundlens.training.metrics.slavc import (
    average_precision,
    confidence,
    f1_curve,
    localization_accuracy,
    max_f1,
    precision_recall,
    slavc_metrics,
)
from soundlens.training.metrics.thresholds import adaptive_threshold, median_threshold, minmax

__all__ = [
    "AUC_THRESHOLDS", "INSTANCE_NAMINGS", "count_instances", "instance_key", "instance_key_fn",
    "naming_for_kind", "official_name", "vggss_official_name", "MCIOU_THRESHOLDS", "adaptive_threshold",
    "auc", "average_precision", "ciou", "confidence", "cross_modal_recall", "f1_curve", "fraction_at_least",
    "frame_f_curves", "frame_ious", "fscore", "fscore_per_batch", "group_cious", "iauc", "iiou",
    "image_group", "localization_accuracy", "max_f1", "mciou", "mean_ciou", "median_threshold", "minmax",
    "miou", "miou_per_batch", "peak_in_box", "peak_on_mask", "precision_recall", "recall_at_k",
    "slavc_metrics", "success_curve",
]
