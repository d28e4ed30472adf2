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

import hashlib
import http.client
import io
import json
import math
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Iterator

from csxa_data.errors import CsxaError
from csxa_data.shards.format import (MAX_MEMBER_BYTES, MEMBER_KINDS, ShardError, decode_sample, iter_tar_stream,
                                     open_regular_file)

SPLITS = ("train", "test")
SHARD_NAME = re.compile(r"(train|test)-[0-9]{6}\.tar", re.ASCII)
SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
SAMPLE_KEY = re.compile(r"[0-9]{7}(_[ab])?", re.ASCII)  # the stem, plus the colour order (schemas.SampleMeta)


class SourceError(CsxaError):
    """A variant source that cannot be read, or whose bytes differ from what it publishes."""


@dataclass(frozen=True)
class SourceParams:
    """Limits for reading a source (the ``sources`` section of params.yaml)."""

    timeout: float = 60.0              # seconds: connect, each read, and a response's status and headers
    min_rate: int = 10_000             # bytes per second a network transfer must average over each timeout
    retries: int = 2                   # further tries of a failed request (connection errors, 5xx)
    max_json_bytes: int = 16 << 20     # shards.json / stats.json larger than this are refused
    max_shard_bytes: int = 8 << 30     # one shard tar
    max_member_bytes: int = MAX_MEMBER_BYTES  # one member of a shard (a PNG, its JSON, its class)

    @classmethod
    def from_dict(cls, data: dict | None) -> "SourceParams":
        from csxa_data.params import dataclass_from_section, require

        params = dataclass_from_section(cls, data, "sources")
        require(0 < params.timeout <= 86400 and 0 <= params.retries <= 100,
                "sources.timeout must be within (0, 86400] seconds and sources.retries within 0..100")
        require(params.min_rate >= 0, "sources.min_rate must not be negative (0: no minimum)")
        require(min(params.max_json_bytes, params.max_shard_bytes, params.max_member_bytes) > 0,
                "sources.max_json_bytes, max_shard_bytes and max_member_bytes must be positive")
        return params


_DEFAULT = SourceParams()


def configure(params: SourceParams) -> None:
    """Set the limits every source opened later in this process (and its workers) uses by default."""
    global _DEFAULT
    _DEFAULT = params


def configure_from_params(path) -> SourceParams:
    """:func:`configure` from the ``sources`` section of a params file (defaults where absent)."""
    from csxa_data.params import load_section

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
            data = _read_at_most(stream, cap + 1, self, name)
        if len(data) > cap:
            raise SourceError(f"larger than the {cap:,}-byte limit (sources.max_json_bytes); not a csxa "
                              f"variant file", path=self.where(name))
        return data

    def __reduce__(self):  # DataLoader workers rebuild the source rather than share handles
        return (open_source, (self.spec, self.params))

    @property
    def spec(self) -> str:
        return self.location


class FolderSource(Source):
    """A variant folder on this machine (a build, a ``dvc pull``, a ``dvc import``)."""

    def open(self, name: str) -> IO[bytes]:
        path = os.path.join(self.location, name)
        try:
            return open_regular_file(path, SourceError)
        except FileNotFoundError:
            hint = ("listed in shards.json but missing (an incomplete dvc pull?)" if name.endswith(".tar")
                    else "not found; is this a built variant (csxa-data build, dvc pull)?")
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
            watch = _HeaderWatch(self.params.timeout)
            try:
                response = watch.open(url)
                return _PacedReader(response, self, name)
            except urllib.error.HTTPError as exc:
                exc.close()
                last = f"HTTP {exc.code} {_one_line(exc.reason)}"
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
                    raise SourceError(f"not a usable HTTP answer ({type(exc).__name__}: {_one_line(str(exc))})",
                                      path=url) from None
                else:
                    last = f"cannot connect ({_one_line(str(reason))})"
            finally:
                watch.cancel()
            pause = min(0.5 * 2 ** attempt, max(0.0, deadline - time.monotonic()))
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

    def open(self, name: str) -> IO[bytes]:
        fs = self.filesystem()
        try:
            return _PacedReader(fs.open(f"{self.path}/{name}", mode="rb"), self, name)
        except FileNotFoundError:
            raise SourceError(f"not in the registry at {self.rev or 'HEAD'}; is {self.path} a published variant?",
                              path=self.where(name)) from None
        except Exception as exc:  # an unknown revision, a remote that cannot be reached, ...
            if type(exc).__name__ == "RevError":
                raise SourceError(_registry_problem(self.repo, self.rev, self.path, exc), path=self.repo) from None
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason given"
            chain, cause = [], exc
            while cause is not None and len(chain) < 20:
                chain.append(cause)
                cause = cause.__cause__ or cause.__context__
            waited = (f"no answer within {self.params.timeout:g} s (sources.timeout): "
                      if any(isinstance(e, TimeoutError) for e in chain) else "")
            raise SourceError(f"cannot fetch from the registry's remote ({waited}{type(exc).__name__}: "
                              f"{_one_line(reason)})", path=self.where(name)) from None


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
    from csxa_data.registry import published_versions

    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if rev and "@" in rev:
        name, _, version = rev.partition("@")
        try:
            versions = [v["version"] for v in published_versions(repo, name)]
        except CsxaError:
            versions = []
        if version not in versions:
            return (f"no version {rev!r} in the registry; published versions of {name}: "
                    f"{', '.join(versions) or 'none'}")
    return f"cannot open the registry at {rev or 'HEAD'} ({text})"


def registry_spec(repo: str, path: str, rev: str | None = None) -> str:
    """The one-string form of a registry source: ``dvc://REPO?rev=REV&path=PATH``."""
    query = urllib.parse.urlencode({k: v for k, v in (("rev", rev), ("path", path)) if v})
    return f"dvc://{repo}?{query}"


def registry_variant(repo: str, variant: str, rev: str | None = None) -> str:
    """The registry spec of a variant given by name (``wide_cropped``: ``data/variants/wide_cropped``)
    or by path in the repository; a bare version ``vX.Y.Z`` means that variant's artifact tag."""
    path = variant if "/" in variant else f"data/variants/{variant}"
    if rev and re.fullmatch(r"v\d+\.\d+\.\d+", rev, re.ASCII):
        rev = f"{path.rstrip('/').rsplit('/', 1)[-1]}@{rev}"
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
        repo, _, query = text[len("dvc://"):].rpartition("?")
        fields = urllib.parse.parse_qs(query, keep_blank_values=False)
        if not repo or "path" not in fields:
            raise SourceError("a registry source is dvc://REPO?rev=REVISION&path=PATH/IN/REPO", path=text)
        return RegistrySource(repo, fields.get("rev", [None])[0], fields["path"][0], params)
    return FolderSource(text, params)


# --- streams -----------------------------------------------------------------------------------

def _one_line(text) -> str:
    return " ".join(str(text).split())[:300]


class _ListedSocket:
    """Mixin for an http.client connection: its socket, once connected, joins ``sockets``."""

    def __init__(self, *args, sockets: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.sockets = sockets

    def connect(self):
        super().connect()
        self.sockets.append(self.sock)


class _WatchedHTTPConnection(_ListedSocket, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_ListedSocket, http.client.HTTPSConnection):
    pass


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, sockets: list):
        super().__init__()
        self.sockets = sockets

    def http_open(self, req):
        return self.do_open(_WatchedHTTPConnection, req, sockets=self.sockets)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, sockets: list):
        super().__init__()
        self.sockets = sockets

    def https_open(self, req):
        return self.do_open(_WatchedHTTPSConnection, req, context=self._context, sockets=self.sockets)


class _HeaderWatch:
    """Open a URL with urllib, shutting its socket down if the status line and headers have not all
    arrived within ``timeout`` seconds: a per-read timeout alone lets a server trickle them, a byte
    at a time, for ever."""

    def __init__(self, timeout: float):
        self.timeout, self.fired, self.done, self.sockets = timeout, False, False, []
        self.lock = threading.Lock()
        self.timer = threading.Timer(timeout, self._fire)
        self.timer.daemon = True

    def open(self, url: str):
        self.timer.start()
        opener = urllib.request.build_opener(_WatchedHTTP(self.sockets), _WatchedHTTPS(self.sockets))
        response = opener.open(url, timeout=self.timeout)
        self.cancel()
        if self.fired:
            response.close()
            raise TimeoutError("status and headers too slow")
        return response

    def _fire(self) -> None:
        with self.lock:  # never after the answer was taken: its socket now carries the body
            if self.done:
                return
            self.fired = True
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cancel(self) -> None:
        with self.lock:
            self.done = True
        self.timer.cancel()


class _PacedReader(io.RawIOBase):
    """A network stream whose stalls become a clear :class:`SourceError`: no byte for
    ``sources.timeout`` seconds (each read's timeout), or fewer than ``sources.min_rate`` bytes a
    second over each ``sources.timeout`` seconds spent waiting for the server (a server trickling a
    byte at a time). Only time inside reads counts: a consumer that pauses (a slow model between
    batches) is not the server being slow."""

    def __init__(self, response, source: Source, name: str):
        self.response, self.source, self.name = response, source, name
        self.waited, self.window_bytes = 0.0, 0
        # read1: what one receive brings; read(n) would wait, for ever if trickled, until n bytes came
        self._read = getattr(response, "read1", response.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        params, where = self.source.params, self.source.where(self.name)
        started = time.monotonic()
        try:
            data = self._read(len(buffer))
        except (socket.timeout, TimeoutError):
            raise SourceError(f"the server stopped sending for {params.timeout:g} s (sources.timeout)",
                              path=where) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, truncated chunked body, ...
            raise SourceError(f"the transfer broke off ({type(exc).__name__}: {_one_line(str(exc))})",
                              path=where) from None
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - a registry's file system raises its own kinds
            raise SourceError(f"the transfer broke off ({type(exc).__name__}: {_one_line(str(exc)) or 'no reason given'})",
                              path=where) from None
        self.waited += time.monotonic() - started
        self.window_bytes += len(data)
        if data and self.waited >= params.timeout:
            if self.window_bytes < params.min_rate * self.waited:
                raise SourceError(f"the server sent {self.window_bytes:,} bytes in {self.waited:.0f} s, under "
                                  f"sources.min_rate ({params.min_rate:,} bytes/s)", path=where)
            self.waited, self.window_bytes = 0.0, 0
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.response.close()
        super().close()


def _read_at_most(stream: IO[bytes], limit: int, source: Source, name: str) -> bytes:
    chunks, total = [], 0
    while total < limit:
        try:
            chunk = stream.read(min(1 << 20, limit - total))
        except SourceError:
            raise
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot read ({type(exc).__name__}: {exc})", path=source.where(name)) from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


class _HashingReader(io.RawIOBase):
    """Pass bytes through, counting and hashing them, refusing more than ``cap``."""

    def __init__(self, stream: IO[bytes], cap: int, where: str):
        self.stream, self.cap, self.where = stream, cap, where
        self.digest, self.size = hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.size += len(data)
        if self.size > self.cap:
            raise SourceError(f"more than {self.cap:,} bytes (sources.max_shard_bytes)", path=self.where)
        self.digest.update(data)
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


# --- the published metadata --------------------------------------------------------------------

def _json(source: Source, name: str) -> dict:
    data = source.read_bytes(name, source.params.max_json_bytes)
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SourceError(f"not valid JSON ({type(exc).__name__}: {_one_line(str(exc))[:200]})",
                          path=source.where(name)) from None
    if not isinstance(value, dict):
        raise SourceError("must be a JSON object", path=source.where(name))
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _by_class(value) -> bool:
    return isinstance(value, dict) and all(k in ("0", "1") and _count(v) for k, v in value.items())


def check_shard_report(report: dict, where: str) -> dict:
    """``shards.json`` against its contract: every shard named, split, counted and hashed, each
    split's totals equal to the sum of its shards. Returns the report."""
    def fail(message: str):
        raise SourceError(f"not a valid csxa shards.json: {message}", path=where)

    shards, totals = report.get("shards"), report.get("totals")
    if not isinstance(shards, list) or not shards:
        fail("'shards' must be a non-empty list")
    if not isinstance(totals, dict) or any(not isinstance(totals.get(s), dict) for s in SPLITS):
        fail("'totals' must hold 'train' and 'test'")
    seen = set()
    for i, shard in enumerate(shards):
        if not isinstance(shard, dict):
            fail(f"shards[{i}] is not an object")
        name = shard.get("name")
        if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
            fail(f"shards[{i}].name {name!r} is not SPLIT-NNNNNN.tar")
        if name in seen:
            fail(f"shard {name} is listed twice")
        seen.add(name)
        if shard.get("split") not in SPLITS or not name.startswith(f"{shard.get('split')}-"):
            fail(f"shard {name}: split {shard.get('split')!r} does not match its name")
        if not isinstance(shard.get("sha256"), str) or not SHA256.fullmatch(shard["sha256"]):
            fail(f"shard {name}: sha256 must be 64 lower-case hex digits")
        if not _count(shard.get("samples")) or not _by_class(shard.get("by_class")) \
                or sum(shard["by_class"].values()) != shard["samples"]:
            fail(f"shard {name}: samples and by_class must be counts that agree")
    for split in SPLITS:
        total = totals[split]
        if not _count(total.get("samples")) or not _by_class(total.get("by_class")):
            fail(f"totals.{split} must hold counts 'samples' and 'by_class'")
        listed = [s for s in shards if s["split"] == split]
        summed = {c: sum(s["by_class"].get(c, 0) for s in listed) for c in ("0", "1")}
        if sum(s["samples"] for s in listed) != total["samples"] or \
                {c: n for c, n in summed.items() if n} != {c: n for c, n in total["by_class"].items() if n}:
            fail(f"totals.{split} ({total['samples']} samples, {total['by_class']}) differ from the sum of its "
                 f"shards ({sum(s['samples'] for s in listed)}, {summed})")
        if not listed:
            fail(f"no {split} shards")
    spec = report.get("spec", {})
    if not isinstance(spec, dict) or not _count(spec.get("out_size")) or not spec["out_size"]:
        fail("'spec.out_size' must be a positive whole number")
    return report


def check_stats(stats: dict, where: str) -> dict:
    """``stats.json``: three finite per-channel means in [0, 1] and stds of at least 1e-6."""
    values = {}
    for key in ("mean", "std"):
        value = stats.get(key)
        if not (isinstance(value, list) and len(value) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
            raise SourceError(f"{key} must be three finite numbers, one per channel, not {value!r}", path=where)
        values[key] = value
    if not all(0 <= m <= 1 for m in values["mean"]):
        raise SourceError(f"mean must lie within [0, 1] (pixel / 255), not {values['mean']}", path=where)
    if not all(s >= 1e-6 for s in values["std"]):
        raise SourceError(f"std must be at least 1e-6 per channel (nothing to normalise by), not {values['std']}",
                          path=where)
    return stats


def shard_report(source: Source) -> dict:
    """The source's ``shards.json``, size-capped and checked."""
    return check_shard_report(_json(source, "shards.json"), source.where("shards.json"))


def stats_report(source: Source) -> dict:
    """The source's ``stats.json``, size-capped and checked."""
    return check_stats(_json(source, "stats.json"), source.where("stats.json"))


def read_json(source: Source, name: str) -> dict:
    """``shards.json`` or ``stats.json``, checked; any other small JSON file, capped."""
    if name == "shards.json":
        return shard_report(source)
    if name == "stats.json":
        return stats_report(source)
    return _json(source, name)


# --- shards ------------------------------------------------------------------------------------

def _png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR, without decoding it."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def shard_samples(source: Source, shard: dict, out_size: int, *, decode: bool = True) -> Iterator[dict]:
    """Samples of one shard as it streams, verified: members only png/cls/json, every image
    ``out_size`` square, every sample's ``split`` the shard's; at the end the sha256, the sample
    count and the per-class counts must equal ``shards.json``'s. Decoded samples (key, image,
    label, meta), or with ``decode=False`` only checked (the image is not decoded)."""
    name, split = shard["name"], shard["split"]
    where = source.where(name)
    by_class = {"0": 0, "1": 0}
    with source.open(name) as raw:
        reader = _HashingReader(raw, source.params.max_shard_bytes, where)
        stream = io.BufferedReader(reader, buffer_size=1 << 20)
        try:
            yield from _checked_samples(iter_tar_stream(stream, where, source.params.max_member_bytes), split,
                                        out_size, where, by_class, decode)
        except ShardError:
            # a damaged download breaks the tar anywhere; its sha256 names the cause better
            stream.read()
            reader.drain()
            if reader.digest.hexdigest() != shard["sha256"]:
                raise _sha256_differs(reader, where) from None
            raise
        stream.read()  # the tar's end-of-archive padding: every byte counts towards the sha256
        reader.drain()
    if reader.digest.hexdigest() != shard["sha256"]:
        raise _sha256_differs(reader, where)
    counted = {c: n for c, n in by_class.items() if n}
    if sum(by_class.values()) != shard["samples"] or counted != {c: n for c, n in shard["by_class"].items() if n}:
        raise SourceError(f"holds {sum(by_class.values())} samples {counted}; shards.json lists {shard['samples']} "
                          f"{shard['by_class']}", path=where)


def _sha256_differs(reader: _HashingReader, where: str) -> SourceError:
    return SourceError(f"sha256 differs from shards.json ({reader.size:,} bytes read): a truncated, damaged or "
                       f"swapped shard", path=where)


def _checked_samples(samples: Iterator[dict], split: str, out_size: int, where: str, by_class: dict,
                     decode: bool) -> Iterator[dict]:
    """The raw samples of one shard checked (key, image size, split) and decoded; counts by class."""
    for sample in samples:
        if not SAMPLE_KEY.fullmatch(sample["__key__"]):
            raise ShardError(f"sample key {sample['__key__']!r} is not a 7-digit stem (plus _a or _b)", path=where)
        size = _png_size(sample.get("png", b""))
        if size is None and all(k in sample for k in MEMBER_KINDS):
            raise ShardError(f"sample {sample['__key__']!r}: the .png member is not a PNG", path=where)
        if size is not None and size != (out_size, out_size):
            raise ShardError(f"sample {sample['__key__']!r} is {size[0]}x{size[1]} px; every image of this "
                             f"variant is {out_size}x{out_size} (spec.out_size)", path=where)
        decoded = decode_sample(sample, image=decode)
        split_of_sample = decoded["meta"].get("split")  # decode_sample: a JSON object, a class 0 or 1
        if split_of_sample != split:
            raise ShardError(f"sample {decoded['key']!r} belongs to the {split_of_sample!r} split but is in a "
                             f"{split} shard: refused, so that no test case reaches training", path=where)
        by_class[str(decoded["label"])] += 1
        yield decoded


def split_shards_of(report: dict, split: str) -> list[dict]:
    """The shards.json entries of one split, in order."""
    return [s for s in report["shards"] if s["split"] == split]


class CaseLedger:
    """The case behind every sample key read so far, over shards and splits: a key twice, a case in
    two splits (its test label would leak into training), or a case twice in one split (scored or
    trained twice) is a ShardError naming the shard. A case may have two samples only in train, as
    the two channel orders ``STEM_a`` and ``STEM_b`` of a colour variant."""

    def __init__(self):
        self.where_key: dict[str, str] = {}
        self.cases: dict[int, tuple[str, str, str]] = {}  # number -> (a key, split, where)

    def add(self, key: str, number: int, split: str, where: str) -> None:
        """Record sample ``key`` of case ``number`` (its .json's), read from ``split`` at ``where``."""
        if not 1 <= number <= 9999 or int(key[:4]) != number:
            raise ShardError(f"sample {key!r}: its .json says case {number}, its key case {int(key[:4])}", path=where)
        other, other_split, other_where = self.cases.get(number, (None, split, None))
        if other_split != split:
            raise ShardError(f"case {number} is in the {other_split} split ({other_where}, {other!r}) and in the "
                             f"{split} split ({key!r}): refused, so that no test case reaches training", path=where)
        if key in self.where_key:
            raise ShardError(f"sample {key!r} appears twice (first in {self.where_key[key]})", path=where)
        self.where_key[key] = where
        if other is None:
            self.cases[number] = (key, split, where)
            return
        if split != "train" or {other[-2:], key[-2:]} != {"_a", "_b"} or other[:-2] != key[:-2]:
            raise ShardError(f"case {number} has two samples in the {split} split ({other!r} in {other_where}, and "
                             f"{key!r}); a case has one (two in train only as the channel orders _a and _b)",
                             path=where)


def split_samples(source: Source, report: dict, split: str, *, decode: bool = True,
                  cases: CaseLedger | None = None) -> Iterator[dict]:
    """Every verified sample of a split, shard after shard, each case checked in ``cases`` (a new
    ledger if None: no case twice within the split)."""
    cases = cases if cases is not None else CaseLedger()
    for shard in split_shards_of(report, split):
        seen = []
        for decoded in shard_samples(source, shard, report["spec"]["out_size"], decode=decode):
            seen.append((decoded["key"], decoded["meta"]["number"]))
            yield decoded
        for key, number in seen:  # once the shard's own bytes are verified: a swapped shard is named as one
            cases.add(key, number, split, source.where(shard["name"]))


def verify(source: Source | str, splits: tuple[str, ...] = SPLITS, *, decode: bool = False,
           cases: CaseLedger | None = None) -> dict:
    """Stream every shard of ``splits`` once (sha256, counts, splits, image headers, or with
    ``decode`` the whole images; no case twice, none in two splits, in ``cases``) and check both
    JSON files; returns shards.json. Run before training so that a bad test shard stops the run
    before hours of work, not after."""
    source = open_source(source)
    report = shard_report(source)
    stats_report(source)
    cases = cases if cases is not None else CaseLedger()
    for split in splits:
        for _ in split_samples(source, report, split, decode=decode, cases=cases):
            pass
    return report
