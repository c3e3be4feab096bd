"""A small PEP 503/691/658 client: project pages, core metadata, file hashes.

Used beside and after resolution: to read each locked wheel's ``Requires-Dist``
(the dependency graph, torch's CUDA flavour), to hash files an index published
without ``#sha256=`` and to record what an index without upload times offered
at lock time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from .errors import PackageIndexError

if TYPE_CHECKING:
    import httpx
    from packaging.tags import Tag
from .urls import redact, shown, strip_credentials

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class IndexLink:
    filename: str
    url: str
    sha256: str | None
    upload_time: str | None = None
    requires_python: str | None = None  # PEP 503 data-requires-python / PEP 691 requires-python


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str | None]] = []
        self._href: str | None = None
        self._requires_python: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            found = dict(attrs)
            self._href = found.get("href")
            self._requires_python = found.get("data-requires-python") or None
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip(), self._requires_python))
            self._href = None


def parse_html_page(html: str, page_url: str) -> list[IndexLink]:
    """Links of a PEP 503 page; hrefs may be root-relative with ``%2B`` for ``+``."""
    parser = _Links()
    parser.feed(html)
    out = []
    for href, text, requires_python in parser.links:
        url, _, fragment = urljoin(page_url, href).partition("#")
        sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        name = text or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        out.append(IndexLink(name, url, sha or None, requires_python=requires_python))
    return out


def parse_json_page(data: object) -> list[IndexLink]:
    """Files of a PEP 691 page; an entry without a text ``filename`` and ``url`` is
    skipped (the page may come from any server)."""
    files = data.get("files", []) if isinstance(data, dict) else []
    out = []
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict):
            continue
        filename, url = item.get("filename"), item.get("url")
        if not (isinstance(filename, str) and isinstance(url, str)):
            continue
        hashes = item.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        upload_time = item.get("upload-time")
        requires_python = item.get("requires-python")
        out.append(
            IndexLink(
                filename,
                url,
                sha256 if isinstance(sha256, str) and sha256 else None,
                upload_time if isinstance(upload_time, str) else None,
                requires_python if isinstance(requires_python, str) and requires_python else None,
            )
        )
    return out


class IndexClient:
    """Blocking client; one per compile, shared by the targets' threads.

    The HTTP client (and with it httpx, a few hundred milliseconds of imports) is
    made on the first request: a compile starts its uv runs first, and asks the
    index only once one is done.
    """

    def __init__(
        self, client: httpx.Client | None = None, *, metadata_cache: Path | None = None
    ) -> None:
        self._metadata_cache = metadata_cache
        self._made = client
        self._making = threading.Lock()
        self._without_pep658: set[str] = set()  # hosts that answered 404 for a .metadata

    @property
    def _client(self) -> httpx.Client:
        if self._made is None:
            with self._making:
                if self._made is None:
                    self._made = _new_client()
        return self._made

    @property
    def _httpx(self) -> ModuleType:
        import httpx

        return httpx

    def close(self) -> None:
        with self._making:
            if self._made is not None:
                self._made.close()

    def project_links(self, index: str, name: str, *, missing_ok: bool = False) -> list[IndexLink]:
        """The files ``index`` lists for ``name``; none when ``missing_ok`` and it answers 404."""
        page = f"{index.rstrip('/')}/{canonicalize_name(name)}/"
        response = self._get(page, headers={"Accept": JSON_ACCEPT}, missing_ok=missing_ok)
        if response.status_code == 404:
            return []
        if response.headers.get("content-type", "").startswith(
            "application/vnd.pypi.simple.v1+json"
        ):
            try:
                document = response.json()
            except ValueError:
                raise PackageIndexError(f"{shown(page)} is not valid JSON.") from None
            links = parse_json_page(document)
            return [replace(x, url=urljoin(page, x.url)) for x in links]
        return parse_html_page(response.text, page)

    def json(self, url: str) -> object:
        """A JSON document (conda ``repodata.json``)."""
        try:
            return self._get(url).json()
        except ValueError:
            raise PackageIndexError(f"{shown(url)} is not valid JSON.") from None

    def core_metadata(self, url: str, sha256: str | None = None) -> str:
        """The METADATA of a wheel: PEP 658 ``.metadata`` first, else from the wheel itself.

        With the wheel's ``sha256`` the answer is cached on disk: a file with that
        hash can never have other metadata.
        """
        text = self.cached_metadata(sha256)
        if text is None:
            text = self.fetch_metadata(url)
            self.keep_metadata(sha256, text)
        return text

    def cached_metadata(self, sha256: str | None) -> str | None:
        """The METADATA cached for the wheel of this hash, if it is."""
        cached = self._cached_path(sha256)
        return None if cached is None else _read_cached(cached)

    def keep_metadata(self, sha256: str | None, text: str, url: str | None = None) -> None:
        """Cache the METADATA read from the wheel of this hash (found at ``url``)."""
        cached = self._cached_path(sha256)
        if cached is None:
            return
        body = text.encode("utf-8")
        _write_unsynced(cached, _CACHED + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
        if url is not None and sha256 is not None:
            _write_unsynced(self._url_path(url), sha256.encode())

    def has_metadata_of(self, url: str) -> bool:
        """Whether the METADATA of the file last read from ``url`` is cached.

        A hint for whether reading early is worth it, never an answer: an index may
        serve another file at the same URL later, and reads go by the file's hash.
        """
        if not self._metadata_cache:
            return False
        try:
            sha256 = self._url_path(url).read_text("ascii")
        except (OSError, UnicodeDecodeError):
            return False
        cached = self._cached_path(sha256)
        return cached is not None and cached.is_file()

    def _cached_path(self, sha256: str | None) -> Path | None:
        if self._metadata_cache and sha256 and _SHA256.fullmatch(sha256):
            return self._metadata_cache / f"{sha256}.METADATA"
        return None

    def _url_path(self, url: str) -> Path:
        assert self._metadata_cache is not None  # noqa: S101 - callers checked
        name = hashlib.sha256(strip_credentials(url).encode()).hexdigest()
        return self._metadata_cache / "urls" / name

    def fetch_metadata(self, url: str, *, ranges_first: bool = False) -> str:
        """The METADATA of the wheel at ``url``, from the index (no cache): its PEP 658
        file, else the wheel's own by byte ranges; with ``ranges_first`` the other way
        round (one request, not a 404 first, where the host lacks those files)."""
        if not ranges_first:
            text = self._pep658(url)
            return text if text is not None else self._from_wheel(url)
        try:
            return self._from_wheel(url)
        except PackageIndexError:
            text = self._pep658(url)
            if text is None:
                raise
            return text

    def lacked_pep658(self, url: str) -> bool:
        """Whether the host of ``url`` answered 404 for a PEP 658 file already."""
        return urlsplit(url).netloc in self._without_pep658

    def _pep658(self, url: str) -> str | None:
        try:
            response = self._client.get(url + ".metadata")
        except self._httpx.HTTPError:
            return None
        if response.status_code == 404:
            self._without_pep658.add(urlsplit(url).netloc)
        return response.text if response.status_code == 200 else None

    def _from_wheel(self, url: str) -> str:
        # No PEP 658 file (PyPI has none for torch 2.6.0): read METADATA out of the
        # wheel with range requests (zip's directory is at the end) rather than
        # downloading hundreds of megabytes. The first asks for the file's tail, which
        # also tells its size; a server that ignores ranges sends the whole file.
        try:
            tail = self._get(url, headers={"Range": f"bytes=-{_HttpRangeFile.BLOCK}"})
            size = _range_total(tail)
            source: io.RawIOBase | io.BytesIO = (
                _HttpRangeFile(self._client, url, size, tail.content)
                if size is not None
                else io.BytesIO(tail.content)
            )
            with zipfile.ZipFile(source) as wheel:
                name = next(
                    (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")), None
                )
                if name is None:
                    raise PackageIndexError(f"{shown(url)} has no .dist-info/METADATA.")
                return wheel.read(name).decode("utf-8")
        except (zipfile.BadZipFile, UnicodeDecodeError, self._httpx.HTTPError) as exc:
            raise PackageIndexError(
                f"Cannot read the metadata of {shown(url)}: {redact(str(exc))}."
            ) from None

    def sha256(self, url: str) -> str:
        """Hash a file by streaming it (for index entries without ``#sha256=``)."""
        digest = hashlib.sha256()
        try:
            with self._client.stream("GET", url) as response:
                _raise_for_status(response, url)
                for chunk in response.iter_bytes(1 << 20):
                    digest.update(chunk)
        except self._httpx.HTTPError as exc:
            raise PackageIndexError(
                f"Cannot download {shown(url)}: {redact(str(exc))}.", hint=_slow_hint(exc)
            ) from None
        return digest.hexdigest()

    def _get(
        self, url: str, headers: dict[str, str] | None = None, *, missing_ok: bool = False
    ) -> httpx.Response:
        try:
            response = self._client.get(url, headers=headers)
        except (self._httpx.HTTPError, self._httpx.InvalidURL) as exc:
            raise PackageIndexError(
                f"Cannot reach {shown(url)}: {redact(str(exc)) or type(exc).__name__}.",
                hint=_slow_hint(exc) or "Check the index URL and your network.",
            ) from None
        if not (missing_ok and response.status_code == 404):
            _raise_for_status(response, url)
        return response


_SHA256 = re.compile(r"[0-9a-f]{64}")
_CACHED = b"lockd-metadata sha256="  # the first line of a cached file, before its hash


def _read_cached(path: Path) -> str | None:
    """A cached METADATA whose first line's hash matches the rest; else ``None`` (absent,
    left short by a crash, or written by an older lockd: asked for again)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    if head != _CACHED + hashlib.sha256(body).hexdigest().encode():
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _write_unsynced(path: Path, data: bytes) -> None:
    """Write a cache file: a unique temporary renamed into place, not synced nor locked
    (the metadata threads of a compile each write dozens: syncing serialised them); a
    METADATA file a crash left short fails its hash line and is asked again."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        temporary = Path(name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        temporary.replace(path)
    except OSError:  # a read-only home: the next run asks again
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()


def _new_client() -> httpx.Client:
    import httpx

    from .settings import deadline
    from .transport import deadline_client

    return deadline_client(
        deadline("LOCKD_HTTP_DEADLINE"),
        timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        follow_redirects=True,
    )


def _range_total(response: httpx.Response) -> int | None:
    """The whole file's size from a ``206`` answer's ``Content-Range: bytes a-b/size``,
    when it answered a byte range with the file's last bytes; else ``None``."""
    if response.status_code != 206:
        return None
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    span, _, total = spec.partition("/")
    first, _, last = span.partition("-")
    if unit != "bytes" or not (total.isdigit() and first.isdigit() and last.isdigit()):
        return None
    size = int(total)
    if int(last) != size - 1 or size - int(first) != len(response.content):
        return None
    return size


class _HttpRangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file, fetched in blocks by HTTP range;
    its last ``len(tail)`` bytes were fetched already."""

    BLOCK = 256 * 1024

    def __init__(self, client: httpx.Client, url: str, size: int, tail: bytes) -> None:
        super().__init__()
        self._client = client
        self._url = url
        self._size = size
        self._tail_start = size - len(tail)
        self._tail = tail
        self._pos = 0
        self._blocks: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._pos + len(view), self._size)
        done = 0
        while self._pos < end:
            if self._pos >= self._tail_start:
                start = self._pos - self._tail_start
                block = self._tail[start : start + end - self._pos]
            else:
                index, offset = divmod(self._pos, self.BLOCK)
                block = self._block(index)[offset : offset + min(end, self._tail_start) - self._pos]
            view[done : done + len(block)] = block
            done += len(block)
            self._pos += len(block)
        return done

    def _block(self, index: int) -> bytes:
        if index not in self._blocks:
            start = index * self.BLOCK
            stop = min(start + self.BLOCK, self._tail_start) - 1
            response = self._client.get(self._url, headers={"Range": f"bytes={start}-{stop}"})
            if response.status_code != 206:
                raise PackageIndexError(
                    f"{shown(self._url)} ignored a byte-range request "
                    f"(HTTP {response.status_code})."
                )
            self._blocks[index] = response.content
        return self._blocks[index]


def _slow_hint(exc: Exception) -> str | None:
    from .transport import exceeded

    if exceeded(exc):
        return "The server answers too slowly; allow more time with LOCKD_HTTP_DEADLINE."
    return None


def _raise_for_status(response: httpx.Response, url: str) -> None:
    if response.status_code in (401, 403):
        raise PackageIndexError(
            f"{shown(url)} answered HTTP {response.status_code}: it wants credentials.",
            hint="Put user:token in the index URL where lockd reads it (--index, "
            "LOCKD_INDEX_URL or index-url in lockd.toml; the same for the PyTorch index).",
        )
    if response.status_code >= 400:
        raise PackageIndexError(f"{shown(url)} answered HTTP {response.status_code}.")


def requires_dist(metadata: str) -> list[str]:
    """The ``Requires-Dist`` lines of a METADATA document."""
    from email.parser import HeaderParser

    message = HeaderParser().parsestr(metadata)
    return [str(value) for value in message.get_all("Requires-Dist") or []]


def wheel_fits(filename: str, tags: frozenset[Tag]) -> bool:
    """A wheel whose file name carries one of ``tags`` (anything else: ``False``)."""
    try:
        return bool(parse_wheel_filename(filename)[3] & tags)
    except InvalidWheelFilename:
        return False


def link_version(link: IndexLink) -> Version | None:
    """The version of a wheel or sdist link, or ``None`` for anything else."""
    try:
        return parse_wheel_filename(link.filename)[1]
    except InvalidWheelFilename:
        pass
    try:
        return parse_sdist_filename(link.filename)[1]
    except InvalidSdistFilename:
        return None


def listed_versions(links: Iterable[IndexLink]) -> tuple[str, ...]:
    """Every version a project page lists, in page order."""
    out: dict[str, None] = {}
    for link in links:
        version = link_version(link)
        if version is not None:
            out.setdefault(str(version), None)
    return tuple(out)


def files_of_version(links: Iterable[IndexLink], version: str) -> dict[str, str | None]:
    """File name -> published sha256 (``None`` when listed without one) for one version."""
    wanted = Version(version)
    return {link.filename: link.sha256 for link in links if link_version(link) == wanted}
