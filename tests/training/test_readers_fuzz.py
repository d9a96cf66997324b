"""Generated bad input (hypothesis) for the readers of files users hand to `soundlens eval` and
`load`: annotation files (VGG-SS / Flickr / AVSBench JSON, Flickr XML, AVSBench CSV) and checkpoint
headers. Any bytes get one SoundLensError, never another exception or a hang."""

from __future__ import annotations

import json
import struct
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from soundlens.models.errors import SoundLensError
from soundlens.training.datasets.annotations import load_annotations
from soundlens.training.datasets.avsbench import read_ms3_meta, read_s4_meta

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12)

# Almost-right records: the shapes the readers expect, with any value in any field.
records = st.one_of(
    st.lists(st.fixed_dictionaries({"file": json_values, "class": json_values, "bbox": json_values}),
             max_size=3),
    st.lists(st.fixed_dictionaries({"image": json_values, "gt_box": json_values}), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    json_values,
)


def clean_or_soundlens_error(read, data: bytes, name: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # corrupt-box reports are warnings by design
            try:
                read(path)
            except SoundLensError:
                pass


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_as_an_annotation_file(data):
    clean_or_soundlens_error(load_annotations, data, "ann.json")


@SETTINGS
@given(records)
def test_almost_right_annotation_records(value):
    clean_or_soundlens_error(load_annotations, json.dumps(value, allow_nan=True).encode(), "ann.json")


@SETTINGS
@given(st.binary(max_size=200) | st.lists(st.text(max_size=6), max_size=6).map(
    lambda xs: ("<annotation><object><bbox>" + "".join(f"<v>{x}</v>" for x in xs)
                + "</bbox></object></annotation>").encode("utf-8", "surrogatepass")))
def test_any_flickr_xml(data):
    def read(path):
        (path.parent / "Annotations").mkdir()
        path.rename(path.parent / "Annotations" / "1.xml")
        load_annotations(path.parent)

    clean_or_soundlens_error(read, data, "1.xml")


@SETTINGS
@given(st.binary(max_size=200) | st.lists(st.text(max_size=8), max_size=8).map(
    lambda xs: ("name,start,category,split\n" + ",".join(xs)).encode("utf-8", "surrogatepass")))
def test_any_avsbench_meta_csv(data):
    clean_or_soundlens_error(read_s4_meta, data, "s4.csv")
    clean_or_soundlens_error(read_ms3_meta, data, "ms3.csv")


def safetensors_like(body: bytes) -> bytes:
    return struct.pack("<Q", len(body)) + body


@SETTINGS
@given(st.binary(max_size=120) | json_values.map(lambda v: safetensors_like(json.dumps(v).encode())))
def test_any_bytes_as_a_checkpoint_header(data):
    from soundlens.models.checkpoint import read_header

    clean_or_soundlens_error(read_header, data, "m.safetensors")
