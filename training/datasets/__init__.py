"""Dataset readers and ground-truth builders (official_repos.md §3.2, §4)."""

from soundlens.training.datasets.annotations import (
    AnnotationSet,
    BoxAnnotation,
    load_annotations,
    load_flickr_boxes_json,
    load_flickr_xml_dir,
    load_vggss_json,
    pixel_boxes_from_list,
    vggss_from_list,
)
from soundlens.training.datasets.avsbench import (
    AVSBenchMS3,
    AVSBenchS4,
    AVSVideo,
    read_ms3_meta,
    read_s4_meta,
)
from soundlens.training.datasets.folder import AudioVisualFolder
from soundlens.training.datasets.gt import (
    flickr_consensus_map,
    parse_flickr_xml,
    pixel_union_map,
    union_map,
)

__all__ = [
    "AVSBenchMS3", "AVSBenchS4", "AVSVideo", "AnnotationSet", "AudioVisualFolder", "BoxAnnotation",
    "flickr_consensus_map", "load_annotations", "load_flickr_boxes_json", "load_flickr_xml_dir",
    "load_vggss_json", "parse_flickr_xml", "pixel_boxes_from_list", "pixel_union_map", "read_ms3_meta",
    "read_s4_meta", "union_map", "vggss_from_list",
]
