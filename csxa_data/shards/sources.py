"""Where a variant's shards come from, and one verification for every source.

A *source* is a published variant: a local folder, an ``http(s)://`` base URL (a static mirror of
the folder), or a registry revision read through ``dvc.api.DVCFileSystem`` without a clone::

    data/variants/wide_cropped
    https://mirror.example.org/csxa/wide_cropped
    dvc://https://github.com/org/csxa?rev=wide_cropped@v1.0.0&path=data/variants/wide_cropped

Every source is treated as hostile and verified the same way: ``shards.json`` and ``stats.json``
are size-capped and checked against their contracts before anything else; each shard is streamed
once, its sha256 computed on the way and compared with ``shards.json`` at its end, its samples
counted per class and checked to belong to the split the shard is listed under. Network reads have
connect/read timeouts and a bounded number of retries. A mismatch is a :class:`SourceError` naming
the shard, raised before a caller writes any result.
"""

from __future__ import annotations

import http.client
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO

from csxa_data.errors import CsxaError, SourceError
from csxa_data.params import dataclass_from_section, load_section, require
from csxa_data.registry import VERSION_TAG, published_versions, resolve_version
from csxa_data.shards.format import MAX_MEMBER_BYTES, open_regular_file
from csxa_data.shards.http import HeaderWatch, PacedReader, one_line, read_at_most
from csxa_data.shards.published import Published, local_published, registry_published


@dataclass(frozen=True)
class SourceParams:
    """Limits for reading a source (the ``sources`` section of params.yaml)."""

    timeout: float = 60.0  # seconds: connect, each read, and a response's status and headers
    min_rate: int = 10_000  # bytes per second a network transfer must average over each timeout
    retries: int = 2  # further tries of a failed request (connection errors, 5xx)
    max_json_bytes: int = 16 << 20  # shards.json / stats.json larger than this are refused
    max_shard_bytes: int = 8 << 30  # one shard tar
    max_member_bytes: int = MAX_MEMBER_BYTES  # one member of a shard (a PNG, its JSON, its class)

    @classmethod
    def from_dict(cls, data: dict | None) -> SourceParams:

        params = dataclass_from_section(cls, data, "sources")
        require(
            0 < params.timeout <= 86400 and 0 <= params.retries <= 100,
            "sources.timeout must be within (0, 86400] seconds and sources.retries within 0..100",
        )
        require(params.min_rate >= 0, "sources.min_rate must not be negative (0: no minimum)")
        require(
            min(params.max_json_bytes, params.max_shard_bytes, params.max_member_bytes) > 0,
            "sources.max_json_bytes, max_shard_bytes and max_member_bytes must be positive",
        )
        return params


_DEFAULT = SourceParams()


def configure(params: SourceParams) -> None:
    """Set the limits every source opened later in this process (and its workers) uses by default."""
    global _DEFAULT
    _DEFAULT = params


def configure_from_params(path) -> SourceParams:
    """:func:`configure` from the ``sources`` section of a params file (defaults where absent)."""

    params = SourceParams.from_dict(load_section(path, "sources"))
    configure(params)
    return params


# --- sources -----------------------------------------------------------------------------------


class Source:
    """A published variant: names inside it are opened as byte streams."""

    def __init__(self, location: str, params: SourceParams):
        self.location, self.params = location, params

    def where(self, name: str) -> str:
        """A human-readable address of ``name`` in this source, for messages."""
        return f"{self.location.rstrip('/')}/{name}"

    def open(self, name: str) -> IO[bytes]:  # pragma: no cover - each source defines it
        raise NotImplementedError

    def read_bytes(self, name: str, cap: int) -> bytes:
        """The whole of ``name``, refusing more than ``cap`` bytes (never reads past the cap)."""
        with self.open(name) as stream:
            data = read_at_most(stream, cap + 1, self.where(name))
        if len(data) > cap:
            raise SourceError(
                f"larger than the {cap:,}-byte limit (sources.max_json_bytes); not a csxa variant file",
                path=self.where(name),
            )
        return data

    def published(self) -> Published | None:
        """The md5 of every file as the registry published it (:mod:`.published`), or None where no
        record names this source (a folder outside DVC, an HTTP mirror): read once per process."""
        if getattr(self, "_published_pid", None) != os.getpid():
            self._published, self._published_pid = self._find_published(), os.getpid()
        return self._published

    def _find_published(self) -> Published | None:
        return None

    def __reduce__(self):  # DataLoader workers rebuild the source rather than share handles
        return (open_source, (self.spec, self.params))

    @property
    def spec(self) -> str:
        return self.location


class FolderSource(Source):
    """A variant folder on this machine (a build, a ``dvc pull``, a ``dvc import``)."""

    def _find_published(self) -> Published | None:
        return local_published(self.location)

    def open(self, name: str) -> IO[bytes]:
        path = os.path.join(self.location, name)
        try:
            return open_regular_file(path, SourceError)
        except FileNotFoundError:
            hint = (
                "listed in shards.json but missing (an incomplete dvc pull?)"
                if name.endswith(".tar")
                else "not found; is this a built variant (csxa-data build, dvc pull)?"
            )
            raise SourceError(hint, path=path) from None
        except OSError as exc:
            raise SourceError(f"cannot read ({exc.strerror or exc})", path=path) from None


class HttpSource(Source):
    """A static HTTP(S) mirror of a variant folder; timeouts and bounded retries on every request."""

    def open(self, name: str) -> IO[bytes]:
        url = self.where(name)
        deadline = time.monotonic() + self.params.timeout * (self.params.retries + 1)
        last = ""
        for attempt in range(self.params.retries + 1):
            watch = HeaderWatch(self.params.timeout)
            try:
                response = watch.open(url)
                return PacedReader(response, self.where(name), self.params.timeout, self.params.min_rate)
            except urllib.error.HTTPError as exc:
                exc.close()
                last = f"HTTP {exc.code} {one_line(exc.reason)}"
                if exc.code < 500:
                    raise SourceError(f"{last}; is this a published csxa variant?", path=url) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                if watch.fired:
                    last = f"no status and headers within {self.params.timeout:g} s (sources.timeout)"
                elif isinstance(reason, (socket.timeout, TimeoutError)):
                    last = f"no answer within {self.params.timeout:g} s (sources.timeout)"
                elif isinstance(exc, (http.client.HTTPException, ValueError)) and not isinstance(exc, OSError):
                    # a malformed answer (status line, header, redirect address) will not mend on retry
                    raise SourceError(
                        f"not a usable HTTP answer ({type(exc).__name__}: {one_line(str(exc))})", path=url
                    ) from None
                else:
                    last = f"cannot connect ({one_line(str(reason))})"
            finally:
                watch.cancel()
            pause = min(0.5 * 2**attempt, max(0.0, deadline - time.monotonic()))
            if attempt < self.params.retries and pause > 0:
                time.sleep(pause)
        raise SourceError(f"{last}, after {self.params.retries + 1} tries", path=url)


class RegistrySource(Source):
    """A variant at a revision of a csxa registry (git + DVC), read with ``DVCFileSystem``:
    no clone, no pull; the bytes come from the registry's default remote."""

    def __init__(self, repo: str, rev: str | None, path: str, params: SourceParams):
        self.repo, self.rev, self.path = repo, rev, path.strip("/")
        super().__init__(f"{repo}@{rev or 'HEAD'}:{self.path}", params)
        self._fs, self._pid = None, None

    @property
    def spec(self) -> str:
        query = urllib.parse.urlencode({k: v for k, v in (("rev", self.rev), ("path", self.path)) if v})
        return f"dvc://{self.repo}?{query}"

    def filesystem(self):
        """The registry revision as a read-only file system (one per process)."""
        if self._fs is None or self._pid != os.getpid():
            from dvc.api import DVCFileSystem

            try:
                fs = DVCFileSystem(self.repo, rev=self.rev)
                timeouts = remote_timeouts(fs.repo.config, self.params.timeout)
                if timeouts:  # opened again, with sources.timeout in place of DVC's 60 s per read
                    fs = DVCFileSystem(self.repo, rev=self.rev, remote_config=timeouts)
                self._fs, self._pid = fs, os.getpid()
            except Exception as exc:  # dvc and scmrepo raise many kinds for a missing repo or revision
                raise SourceError(_registry_problem(self.repo, self.rev, self.path, exc), path=self.repo) from None
        return self._fs

    def _find_published(self) -> Published:
        fs = self.filesystem()
        try:
            return registry_published(fs, self.path, self.location, self.rev)
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - dvc, scmrepo and the remote's file system raise many kinds
            raise SourceError(
                f"cannot read what the registry published for {self.path} ({type(exc).__name__}: "
                f"{one_line(str(exc)) or 'no reason given'})",
                path=self.location,
            ) from None

    def open(self, name: str) -> IO[bytes]:
        fs = self.filesystem()
        try:
            return PacedReader(
                fs.open(f"{self.path}/{name}", mode="rb"), self.where(name), self.params.timeout, self.params.min_rate
            )
        except FileNotFoundError:
            raise SourceError(
                f"not in the registry at {self.rev or 'HEAD'}; is {self.path} a published variant?",
                path=self.where(name),
            ) from None
        except Exception as exc:  # an unknown revision, a remote that cannot be reached, ...
            if type(exc).__name__ == "RevError":
                raise SourceError(_registry_problem(self.repo, self.rev, self.path, exc), path=self.repo) from None
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason given"
            chain, cause = [], exc
            while cause is not None and len(chain) < 20:
                chain.append(cause)
                cause = cause.__cause__ or cause.__context__
            waited = (
                f"no answer within {self.params.timeout:g} s (sources.timeout): "
                if any(isinstance(e, TimeoutError) for e in chain)
                else ""
            )
            raise SourceError(
                f"cannot fetch from the registry's remote ({waited}{type(exc).__name__}: {one_line(reason)})",
                path=self.where(name),
            ) from None


def remote_timeouts(config, timeout: float) -> dict:
    """The connect and read timeouts to give a registry's default remote, as DVC's settings for its
    kind (HTTP(S) and S3; DVC waits 60 s for each read otherwise), or {} for a remote that has
    none (a local folder)."""
    name = config["core"].get("remote")
    url = str(config["remote"].get(name, {}).get("url", "")) if name else ""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return {"connect_timeout": timeout, "read_timeout": timeout}
    if scheme == "s3":  # whole seconds in DVC's S3 settings
        return {"connect_timeout": math.ceil(timeout), "read_timeout": math.ceil(timeout)}
    return {}


def _registry_problem(repo: str, rev: str | None, path: str, exc: Exception) -> str:
    """One line on why a registry revision cannot be opened, naming the versions that exist."""

    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if rev and "@" in rev:
        name, _, version = rev.partition("@")
        try:
            versions = [v["version"] for v in published_versions(repo, name)]
        except CsxaError:
            versions = []
        if version not in versions:
            return f"no version {rev!r} in the registry; published versions of {name}: {', '.join(versions) or 'none'}"
    return f"cannot open the registry at {rev or 'HEAD'} ({text})"


def registry_spec(repo: str, path: str, rev: str | None = None) -> str:
    """The one-string form of a registry source: ``dvc://REPO?rev=REV&path=PATH``."""
    query = urllib.parse.urlencode({k: v for k, v in (("rev", rev), ("path", path)) if v})
    return f"dvc://{repo}?{query}"


def registry_variant(repo: str, variant: str, rev: str | None = None) -> str:
    """The registry spec of a variant given by name (``wide_cropped``: ``data/variants/wide_cropped``)
    or by path in the repository; a bare version ``vX.Y.Z`` means that variant's artifact tag, and
    ``latest`` its newest version that is not withdrawn (the tags are read to know)."""
    path = variant if "/" in variant else f"data/variants/{variant}"
    if rev == "latest" or (rev and VERSION_TAG.fullmatch(rev)):
        # latest: the newest version not withdrawn; a withdrawn version named outright: a warning
        rev, _ = resolve_version(repo, path.rstrip("/").rsplit("/", 1)[-1], rev)
    return registry_spec(repo, path, rev)


def open_source(spec: str | os.PathLike | Source, params: SourceParams | None = None) -> Source:
    """A source from a folder path, an ``http(s)://`` URL or a ``dvc://REPO?rev=..&path=..`` spec."""
    if isinstance(spec, Source):
        return spec
    params = params or _DEFAULT
    text = os.fspath(spec)
    if text.startswith(("http://", "https://")):
        return HttpSource(text.rstrip("/"), params)
    if text.startswith("dvc://"):
        repo, _, query = text[len("dvc://") :].rpartition("?")
        fields = urllib.parse.parse_qs(query, keep_blank_values=False)
        if not repo or "path" not in fields:
            raise SourceError("a registry source is dvc://REPO?rev=REVISION&path=PATH/IN/REPO", path=text)
        return RegistrySource(repo, fields.get("rev", [None])[0], fields["path"][0], params)
    return FolderSource(text, params)
