"""Download a file with an MD5 check; a partial or corrupt download is never kept."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from globalpool.atomic import atomic_path


def file_md5(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str, dest: str | os.PathLike, md5: str | None = None, *, timeout: float = 60.0
) -> Path:
    """Fetch ``url`` (http, https or file) to ``dest``, checking its MD5.

    The bytes go to a temporary file beside ``dest``, which is renamed to ``dest`` only
    after the whole body arrived and its MD5 equals ``md5``; on a checksum mismatch, a
    broken connection or an interrupt the temporary file is deleted.

    Args:
        url: where to download from.
        dest: the final file path (its folder is created).
        md5: expected hex digest, or None to skip the check.
        timeout: seconds to wait for the server.

    Returns:
        ``dest`` as a Path.

    Raises:
        ValueError: the download failed or the checksum did not match (the message names
            the URL, the expected and the actual digest).
    """
    dest = Path(dest)
    digest = hashlib.md5()
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                expected = response.headers.get("Content-Length")
                received = 0
                while block := response.read(1 << 20):
                    digest.update(block)
                    f.write(block)
                    received += len(block)
            # http.client does not flag a connection closed before Content-Length bytes.
            if expected is not None and expected.isdigit() and received != int(expected):
                raise ValueError(f"connection closed after {received} of {expected} bytes")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            raise ValueError(f"could not download {url} to {dest}: {err!r}") from err
        got = digest.hexdigest()
        if md5 is not None and got != md5.lower():
            raise ValueError(
                f"checksum mismatch for {url}: expected MD5 {md5.lower()}, got {got}; "
                f"the download was discarded (nothing written to {dest})"
            )
    return dest
