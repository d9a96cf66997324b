"""Split hygiene: read id lists in every form the field ships, find train/test overlap, write a clean list.

Forms (official_repos.md §4.2): one id a line; `id,int` CSV (CRLF in the Flickr lists);
`<id>.jpg` / `<id>.wav` lines; `<id>.mp4,label` (VGGSound test.csv); CSVs with a header
(`video,audio,label`); VGG-SS-format JSON; Flickr boxes JSON; and SSL-Align's
`<ytid>_<start_ms>_<end_ms>` naming, normalised to VGGSound's `<ytid>_<start:06d>` (§2.4).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from soundlens.models.errors import SoundLensError

MEDIA_EXTENSIONS = (".jpg", ".jpeg", ".png", ".wav", ".mp4", ".mp3", ".mkv", ".flac", ".npy", ".xml", ".pkl")
# A YouTube id is 11 characters of [A-Za-z0-9_-]; SSL-Align names clips <ytid>_<start_ms>_<end_ms>.
_YT_MS = re.compile(r"^([A-Za-z0-9_-]{11})_(\d+)_(\d+)$")
# First fields that mark a header line rather than an id.
HEADER_FIELDS = frozenset({"id", "ids", "video", "video_id", "videoid", "name", "file", "filename", "ytid",
                           "youtube_id", "image", "audio", "clip", "sample"})


def strip_extension(token: str) -> str:
    """Drop one known media extension (`.jpg`, `.wav`, `.mp4`, ...; case-insensitive)."""
    lower = token.lower()
    for ext in MEDIA_EXTENSIONS:
        if lower.endswith(ext):
            return token[: -len(ext)]
    return token


def normalize_id(token: str) -> str:
    """One list token -> canonical sample id.

    Strips whitespace, quotes, any directory and a media extension, then converts
    `<ytid>_<start_ms>_<end_ms>` to `<ytid>_<start_ms // 1000:06d>` (official_repos.md §2.4:
    `xxxxxxxxxxx_000032` <-> `xxxxxxxxxxx_32000_42000`). Flickr ids and VGGSound ids pass
    unchanged.
    """
    t = token.strip().strip('"').strip("'").replace("\\", "/").split("/")[-1]
    t = strip_extension(t)
    m = _YT_MS.match(t)
    if m:
        return f"{m.group(1)}_{int(m.group(2)) // 1000:06d}"
    return t


def _first_field(line: str) -> str:
    content = line.strip()
    if "," in content:
        return content.split(",", 1)[0]
    return content.split()[0] if content else ""


@dataclass
class IdList:
    """A parsed id list that remembers its original form, so a filtered copy can be written.

    Attributes:
        path: the file read.
        form: "lines" (text, one record a line) or "json".
        lines: the raw lines with their endings ("lines" form).
        line_ids: the normalised id of each line, None for blank and header lines.
        data: the parsed JSON ("json" form).
    """

    path: Path
    form: str
    lines: list[str] = field(default_factory=list)
    line_ids: list[str | None] = field(default_factory=list)
    data: object = None

    @property
    def ids(self) -> list[str]:
        """Normalised ids in file order (duplicates kept)."""
        if self.form == "lines":
            return [i for i in self.line_ids if i is not None]
        if isinstance(self.data, dict):
            return [normalize_id(str(k)) for k in self.data]
        return [normalize_id(_json_record_id(r)) for r in self.data]

    def without(self, drop: set[str]) -> tuple[str, int]:
        """The file's text minus the records whose id is in `drop`, and how many were removed."""
        if self.form == "lines":
            kept = [ln for ln, i in zip(self.lines, self.line_ids, strict=True) if i is None or i not in drop]
            return "".join(kept), len(self.lines) - len(kept)
        if isinstance(self.data, dict):
            out = {k: v for k, v in self.data.items() if normalize_id(str(k)) not in drop}
        else:
            out = [r for r in self.data if normalize_id(_json_record_id(r)) not in drop]
        indent = 1 if "\n" in self.path.read_text(encoding="utf-8-sig")[:200] else None
        return json.dumps(out, indent=indent) + "\n", len(self.data) - len(out)


def _json_record_id(record) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        for key in ("file", "image", "video", "id", "name"):
            if key in record:
                return str(record[key])
    raise SoundLensError(f"JSON list entry {str(record)[:60]!r} has no file/image/id field; "
                         "pass a list of ids or of {file, ...} records")


def read_id_list(path: str | Path) -> IdList:
    """Read an id list in any supported form (see the module docstring)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SoundLensError(f"list file {path} does not exist; pass an existing file") from None
    text = raw.decode("utf-8-sig", errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SoundLensError(f"{path} looks like JSON but does not parse ({err})") from None
        if not isinstance(data, (list, dict)):
            raise SoundLensError(f"{path}: expected a JSON list or object of ids")
        out = IdList(path, "json", data=data)
        _ = out.ids  # validate the records now, not at first use
        return out
    lines = text.splitlines(keepends=True)
    line_ids: list[str | None] = []
    seen_content = False
    for line in lines:
        first = _first_field(line)
        if not first:
            line_ids.append(None)
            continue
        if not seen_content and first.strip().strip('"').lower() in HEADER_FIELDS:
            line_ids.append(None)  # a header such as `video,audio,label`
        else:
            line_ids.append(normalize_id(first))
        seen_content = True
    return IdList(path, "lines", lines, line_ids)


@dataclass
class SplitReport:
    """Overlap between a training list and a test list (ids normalised)."""

    train: str
    test: str
    n_train_records: int
    n_train_unique: int
    n_test_unique: int
    overlap: list[str]  # overlapping ids, unique, in training-list order

    @property
    def n_overlap(self) -> int:
        return len(self.overlap)


def check_split(train: str | Path | IdList, test: str | Path | IdList) -> SplitReport:
    """Compare a training list with a test list after id normalisation."""
    tr = train if isinstance(train, IdList) else read_id_list(train)
    te = test if isinstance(test, IdList) else read_id_list(test)
    test_ids = set(te.ids)
    train_ids = tr.ids
    overlap = list(dict.fromkeys(i for i in train_ids if i in test_ids))
    return SplitReport(str(tr.path), str(te.path), len(train_ids), len(set(train_ids)), len(test_ids),
                       overlap)


def write_clean(train: str | Path | IdList, test_ids: set[str], out: str | Path) -> int:
    """Write the training list minus `test_ids`, keeping its form and line endings.

    Returns the number of records removed.
    """
    tr = train if isinstance(train, IdList) else read_id_list(train)
    text, removed = tr.without(set(test_ids))
    out = Path(out)
    if out.resolve() == tr.path.resolve():
        raise SoundLensError(f"--write-clean {out} would overwrite the training list; choose another path")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as f:  # newline="": keep CRLF lines as they were
        f.write(text)
    return removed
