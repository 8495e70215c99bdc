"""Download of the UCI HIGGS file: resumable, with a progress bar, verified by sha256 before use.

The download goes to ``<target>.part``; an interrupted run resumes it with an HTTP ``Range``
request. Only when the whole file is there and its sha256 matches the expected one is it renamed
to the target, so a corrupt or foreign file is never taken for HIGGS.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["ChecksumError", "DownloadError", "download", "sha256_file"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the expected one."""


class DownloadError(OSError):
    """The file could not be downloaded; the message names the URL and the way around it."""


def _download_failed(url: str, target: Path, reason: object) -> DownloadError:
    return DownloadError(
        f"cannot download {url}: {reason}. Without access to it, copy HIGGS.csv.gz here by "
        f"other means and name it in the configuration: data: {{source: path, path: "
        f"/where/it/is/HIGGS.csv.gz}} (or place it at {target} and keep source: uci; it is "
        "then checked against data.sha256)"
    )


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 8 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _progress(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
        desc=desc, mininterval=2.0,
    )  # fmt: skip


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    return urllib.request.urlopen(request, timeout=timeout)


def _fetch_into(part: Path, url: str, start: int, timeout: float) -> None:
    """Append the bytes of ``url`` from offset ``start`` to ``part`` (restarting if refused)."""
    with _open(url, start, timeout) as response:
        status = getattr(response, "status", 200)
        if start and status != 206:
            log.warning("server ignored the resume request (HTTP %s): starting over", status)
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        if start:
            log.info("resuming %s at %d bytes", part, start)
        with open(part, "ab" if start else "wb") as out, _progress(total, start, part.name) as bar:
            while block := response.read(_CHUNK):
                out.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size != total:
        raise OSError(
            f"download of {url} stopped at {part.stat().st_size} of {total} bytes; "
            "run again to resume"
        )


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    sha256: str | None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``target``, resuming ``target.part``, and verify its sha256.

    ``sha256`` None skips verification (logged as a warning). A mismatch removes the partial
    file and raises :class:`ChecksumError` naming both digests; the target is never written.
    A server that cannot be reached raises :class:`DownloadError` naming the URL and how to
    use a local copy instead.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.exists() else 0
    try:
        _fetch_into(part, url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not start:  # 416: the partial file is already whole
            raise _download_failed(url, target, f"HTTP {exc.code} {exc.reason}") from exc
        log.info("%s is already complete (%d bytes)", part, start)
    except urllib.error.URLError as exc:  # no route, no name resolution, refused, ...
        raise _download_failed(url, target, exc.reason) from exc
    except (TimeoutError, ConnectionError) as exc:
        raise _download_failed(url, target, exc) from exc
    digest = sha256_file(part)
    if sha256 is None:
        log.warning("no sha256 given for %s: the download (sha256 %s) is not verified", url, digest)
    elif digest != sha256.lower():
        part.unlink()
        raise ChecksumError(
            f"sha256 of the download of {url} is {digest}, expected {sha256}: refusing to use it"
        )
    os.replace(part, target)
    log.info("downloaded %s (sha256 %s)", target, digest)
    return target
