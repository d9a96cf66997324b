"""Instances for SSL-Align's iIoU / iAUC, formed from each dataset's naming as the official loops do.

kaistmm/SSLalignment `test.py` (`validate_lvs`, `validate`; official_repos.md §2.4) keys every
sample by `short_name` = its file name without the directory and `.jpg`, minus the last `_` token
(`training.metrics.ciou.image_group`); samples with the same key are one instance (one image with
one annotation per sounding object, IS3). What that key is depends on the name the loop is given,
which is the dataset's own file naming, not SoundLens's sample id:

| naming | SoundLens id | name the official loop sees | key | instances |
|---|---|---|---|---|
| `vggss` | `YTID_000032` | `YTID_32000_42000.mp4` (`datasets_lvs.vgg_filename`; `datasets.py` without `.mp4`)
    | `YTID_32000` | one per clip |
| `flickr` | `10000130166` | `10000130166.mp4` (`datasets_lvs`; `datasets.py`: `10000130166`) | `""`
    | one for the whole set |
| `image` | `accordion_baby_10467_accordion` | `accordion_baby_10467_accordion.jpg` (IS3), `0d9u2CymIxc_1.png`
    (S4) | `accordion_baby_10467`, `0d9u2CymIxc` | one per image (IS3), per video (AVSBench) |
| `per_sample` | any | (no official loop) | the id | one per sample |

Applying the rule to SoundLens's VGG-SS id instead (`YTID_000032` -> `YTID`) would merge the
clips of one YouTube video (5,017 groups for the 5,158 VGG-SS clips): that is not what the
official evaluator computes. On Flickr every official name lacks a `_`, so the official loops put
the whole test set in one instance (iIoU is 1 only if every clip reaches the threshold); SoundLens
reproduces that. Ids that do not have the VGG-SS form (`<11-char YouTube id>_<6 digits>`), such as
the procedural benchmark's `synth_000012`, are one instance each under `vggss`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from soundlens.training.metrics.ciou import image_group

INSTANCE_NAMINGS: tuple[str, ...] = ("vggss", "flickr", "image", "per_sample")
# AnnotationSet.kind -> naming: VGG-SS-format JSON (VGG-SS, the procedural benchmark), Flickr boxes,
# pixel boxes ({image, gt_box}: IS3 `synthetic3240_bbox.json`, AVSBench `s4_box.json`/`ms3_box.json`).
_KIND_NAMING = {"normalised": "vggss", "flickr": "flickr", "pixels": "image"}


def vggss_official_name(sample_id: str) -> str | None:
    """The name SSL-Align's loaders give a VGG-SS clip: `YTID_000032` -> `YTID_32000_42000`.

    Mirrors `datasets_lvs.vgg_filename` / `datasets.vgg_filename` (official_repos.md §2.4): the
    first 11 characters are the YouTube id, the digits after character 12 the start in seconds,
    the clip lasting 10 s. Returns None for an id without that form (no official name).
    """
    ytid, sep, start = sample_id[:11], sample_id[11:12], sample_id[12:]
    if len(ytid) != 11 or sep != "_" or not start.isdigit():
        return None
    s = int(start)
    return f"{ytid}_{s * 1000}_{(s + 10) * 1000}"


def official_name(sample_id: str, naming: str) -> str | None:
    """The file name `test.py::validate_lvs` passes on for a sample (None: no official name).

    Args:
        sample_id: SoundLens id (`YTID_000032`, Flickr `10000130166`, an image stem).
        naming: one of `INSTANCE_NAMINGS`.
    """
    _check(naming)
    if naming == "vggss":
        name = vggss_official_name(sample_id)
        return None if name is None else name + ".mp4"
    if naming == "flickr":
        return sample_id + ".mp4"  # datasets_lvs: csv id + '.mp4'
    if naming == "image":
        return sample_id + ".jpg"  # the image file; its extension sits on the dropped last token
    return None


def instance_key(sample_id: str, naming: str) -> str:
    """The instance a sample belongs to under the official `short_name` rule (module table).

    Samples without an official name (`per_sample`, non-VGG-SS ids under `vggss`) are their own
    instance, keyed by their id. (Under `vggss` such an id cannot equal an official key
    `YTID_<start ms>`: that form is itself a VGG-SS id and would have been converted.)
    """
    name = official_name(sample_id, naming)
    return sample_id if name is None else image_group(name)


def instance_key_fn(naming: str) -> Callable[[str], str]:
    """`instance_key` with the naming bound: the `key` argument of `group_cious`."""
    _check(naming)
    return lambda sample_id: instance_key(sample_id, naming)


def naming_for_kind(kind: str) -> str:
    """The instance naming of an annotation kind (`AnnotationSet.kind`); `per_sample` if unknown."""
    return _KIND_NAMING.get(kind, "per_sample")


def count_instances(ids: Iterable[str], naming: str) -> int:
    """Number of distinct instances among `ids` (VGG-SS: 5,158 for its 5,158 clips)."""
    return len({instance_key(i, naming) for i in ids})


def _check(naming: str) -> None:
    if naming not in INSTANCE_NAMINGS:
        raise ValueError(f"unknown instance naming '{naming}'; choose one of {', '.join(INSTANCE_NAMINGS)}")
