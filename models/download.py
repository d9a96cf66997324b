"""Downloading a released checkpoint with gdown, which does the hard parts for any URL: Google Drive's
confirmation pages and folder listings, resuming a partial file with an HTTP Range request (checking
that the server honoured it), timeouts, retries and a progress bar. Every failure becomes one
SoundLensError that says what to do next.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from urllib.parse import urlparse

from soundlens.models.errors import SoundLensError


def _gdown():
    try:
        # gdown and requests (~300 modules) only when a release is downloaded
        import gdown
        import requests
    except ImportError:
        raise SoundLensError("downloading a released model needs gdown: pip install 'gdown>=6.5'; or "
                             "download the file yourself and pull it with --from FILE") from None
    return gdown, requests


def _by_hand(url: str, file: str = "") -> str:
    what = f"the file {file.lstrip('*/')} from the folder {url}" if file else url
    return (f"download {what} in a browser and run the same pull with --from FILE, or pull from a mirror "
            "with --url")


def download(url: str, dest: Path, file: str = "", retries: int = 3, timeout: float = 30.0,
             quiet: bool = False, by_hand: str | None = None) -> Path:
    """Fetch `url` to `dest`. A partial file from an earlier, interrupted call for the same `dest` is
    resumed. For a Google Drive folder URL, `file` (a glob) picks the one file to fetch from it.
    `by_hand` is the advice the errors end with when the host cannot give the file (default: a pull's)."""
    gdown, requests = _gdown()
    from gdown.exceptions import DownloadError, FileURLRetrievalError  # after _gdown's clear error

    dest.parent.mkdir(parents=True, exist_ok=True)
    host = urlparse(url).hostname or url
    drive = host.endswith("google.com")
    folder = drive and "/folders/" in url
    file = file if folder else ""  # a file inside a Drive folder; meaningless for any other URL
    by_hand = by_hand or _by_hand(url, file)
    try:
        target = url
        if folder:
            target = _drive_folder_file(gdown, url, file, timeout)
        # Cookies only matter for Drive's confirmation step; elsewhere gdown must not write its
        # cookie file into the user's home.
        gdown.download(target, output=str(dest), quiet=quiet, resume=True, timeout=timeout, retries=retries,
                       use_cookies=drive)
    except SoundLensError:
        raise
    except FileURLRetrievalError as err:  # Drive answered with a page instead of the file
        raise SoundLensError(f"{host} did not hand out the file ({_first_line(err)}): a quota, permission or "
                             f"removed-file page; {by_hand}") from None
    except requests.exceptions.HTTPError as err:
        code = err.response.status_code if err.response is not None else "error"
        raise SoundLensError(f"{host} answered HTTP {code} for {url}; {by_hand}") from None
    except (DownloadError, requests.exceptions.RequestException) as err:
        cause = err if isinstance(err, requests.exceptions.RequestException) else err.__cause__
        partial = _partial_bytes(dest)
        if (isinstance(cause, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))
                and not partial):
            raise SoundLensError(f"cannot reach {host} ({cause.__class__.__name__}): are you offline? "
                                 f"{by_hand}") from None
        if "byte range" in str(err):  # the host cannot resume: the partial file is useless
            discard_partial(dest)
            raise SoundLensError(f"{host} cannot resume the download ({_first_line(err)}); the "
                                 "partial file was deleted and running the same command again starts "
                                 "from the beginning") from None
        kept = f"{partial} bytes are kept and " if partial else ""
        raise SoundLensError(f"the download from {host} was interrupted ({_first_line(err)}); "
                             f"{kept}running the same command again resumes it") from None
    if not dest.is_file():
        raise SoundLensError(f"{host} sent nothing for {url}; {by_hand}")
    return dest


def _drive_folder_file(gdown, url: str, pattern: str, timeout: float) -> str:
    """The Drive URL of the one file in folder `url` whose path matches `pattern`."""
    listing = gdown.download_folder(url, skip_download=True, quiet=True, timeout=timeout)
    paths = [f.path for f in listing]
    hits = [f for f in listing if pattern and fnmatch.fnmatch(f.path, pattern)]
    if len(hits) != 1:
        raise SoundLensError(f"the Drive folder {url} holds {len(hits)} files matching '{pattern}' (it lists "
                             f"{', '.join(paths[:20]) or 'nothing'}); {_by_hand(url, pattern)}")
    return f"https://drive.google.com/uc?id={hits[0].id}"


def _partial_bytes(dest: Path) -> int:
    """Bytes in gdown's partial files for `dest` (named DEST + 8 random characters + '.part')."""
    total = 0
    for p in dest.parent.glob(dest.name + "*.part"):
        if len(p.name) == len(dest.name) + 8 + len(".part"):
            total += p.stat().st_size
    return total


def discard_partial(dest: Path) -> None:
    for p in dest.parent.glob(dest.name + "*.part"):
        if len(p.name) == len(dest.name) + 8 + len(".part"):
            os.unlink(p)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else err.__class__.__name__)[:200]
