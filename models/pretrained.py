"""Released weights as data (timm's pretrained configs): each method file lists, next to its `OFFICIAL`
importers, the official releases SoundLens can import (`PRETRAINED`), and `pull` turns one into a cached
SoundLens checkpoint that `models.load(NAME)` finds.

The cache is `$SOUNDLENS_HOME` or `$XDG_CACHE_HOME/soundlens` (default `~/.cache/soundlens`):
`models/NAME.safetensors` (what `load` reads), `downloads/` (partial files kept for resuming),
`locks/` (one lock file per name, so two concurrent pulls of one model download it once).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from soundlens.models.download import download
from soundlens.models.errors import SoundLensError
from soundlens.models.registry import available, method_entry


@dataclass(frozen=True)
class PretrainedRelease:
    """One official checkpoint: where the authors publish it and what it is.

    importer: the `OfficialSource` it imports with (`soundlens import --from IMPORTER`).
    url: exactly as the official README gives it (`readme` names the README and commit).
    file: for a URL that is a Drive *folder*, the file inside it (a glob on the folder's paths).
    reported: test set -> {metric: value} as the authors report them for this checkpoint.
    licence: the licence of the official repository (the releases state none of their own).
    sha256: of the official file, where known; `pull` refuses a file that does not match.
    """

    name: str
    importer: str
    url: str
    readme: str
    train_data: str
    reported: dict = field(default_factory=dict)
    licence: str = ""
    sha256: str | None = None
    file: str = ""
    note: str = ""


def releases() -> dict[str, PretrainedRelease]:
    """Every release the method files register, by name."""
    return {r.name: r for m in available() for r in method_entry(m).pretrained}


def release(name: str) -> PretrainedRelease:
    known = releases()
    if name not in known:
        raise SoundLensError(f"unknown released model '{name}'; 'soundlens models --pretrained' lists them: "
                             + ", ".join(sorted(known)))
    return known[name]


def home() -> Path:
    """SoundLens' cache folder: $SOUNDLENS_HOME, else $XDG_CACHE_HOME/soundlens, else ~/.cache/soundlens."""
    if os.environ.get("SOUNDLENS_HOME"):
        return Path(os.environ["SOUNDLENS_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "soundlens"


def cached_path(name: str) -> Path:
    """Where the pulled checkpoint of release `name` lives (whether or not it was pulled)."""
    return home() / "models" / f"{name}.safetensors"


def pull_command(name: str) -> str:
    return f"soundlens models pull {name}"


@contextlib.contextmanager
def _locked(name: str, doing: str | None = None):
    """An exclusive lock per release name (fcntl: released by the kernel if the process dies).
    `doing` names what the holder does, for the waiting message (default: a pull of `name`)."""
    import fcntl  # POSIX only: keeps this module importable elsewhere

    path = home() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            doing = doing or f"'{pull_command(name)}'"
            print(f"waiting for another {doing} to finish ...", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def looks_like_html(path: Path) -> bool:
    """A web page where a checkpoint should be (checkpoints are zip or pickle files, never text)."""
    with path.open("rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--"))


def where_from(src, url, rel: PretrainedRelease) -> str:
    return str(src) if src is not None else (url or rel.url)


def pull(name: str, src: str | Path | None = None, url: str | None = None, force: bool = False,
         retries: int = 3, timeout: float = 30.0, quiet: bool = False) -> Path:
    """Download release `name` (or take the file `src` the user already has, or the same file from the
    mirror `url`), verify it, import it strictly and cache the SoundLens checkpoint. Returns its path.

    A failed pull leaves no cache entry: the checkpoint is written only after the import succeeded
    (`models.save` writes a temporary file and renames it). A download cut off by the network keeps
    its partial file, and the next pull of the same URL resumes it; a file that turns out to be wrong
    (a web page, a hash mismatch, unreadable or truncated) is deleted.
    """
    from soundlens.models.importers import import_official  # torch; cycle: importers -> checkpoint -> here

    rel = release(name)
    out = cached_path(name)
    with _locked(name):
        if out.is_file() and not force:
            return out  # pulled before (perhaps by the pull this one waited for)
        if src is not None:
            source, owned = Path(src), False
            if not source.is_file():
                raise SoundLensError(f"file not found: {source}")
        else:
            where = url or rel.url
            # One partial file per (release, URL): a mirror's bytes are never spliced onto another's.
            tag = hashlib.sha1(where.encode()).hexdigest()[:10]
            source, owned = download(where, home() / "downloads" / f"{name}-{tag}.pth", file=rel.file,
                                     retries=retries, timeout=timeout, quiet=quiet), True
        gone = " (the file was deleted)" if owned else ""
        try:
            if looks_like_html(source):
                raise SoundLensError(
                    f"{where_from(src, url, rel)} gave a web page, not a checkpoint (a file host's quota, "
                    f"sign-in or virus-scan page?){gone}; download the file in a browser and run "
                    f"'{pull_command(name)} --from FILE', or pull from a mirror with --url")
            digest = sha256_of(source)
            if rel.sha256 and digest != rel.sha256:
                raise SoundLensError(
                    f"{source.name} is not the released {name}: its sha256 is {digest}, the release's is "
                    f"{rel.sha256}{gone}; pull it again, or from the official URL {rel.url}")
            try:
                import_official(rel.importer, source, out, extra={
                    "pretrained": name, "source_url": where_from(src, url, rel), "source_sha256": digest})
            except SoundLensError as err:
                raise SoundLensError(
                    f"{source.name} is not a readable {rel.importer} checkpoint (truncated, or another file?)"
                    f"{gone}; pull it again, or download it by hand and pull with "
                    f"--from FILE. {err}") from None
        except SoundLensError:
            if owned:
                source.unlink(missing_ok=True)
            raise
        if owned:
            source.unlink(missing_ok=True)
    return out
