"""Network and file streams that cannot hang or flood a reader: HTTP status and headers within a
deadline, reads paced against a minimum rate, size caps, and bytes hashed as they pass."""

from __future__ import annotations

import hashlib
import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import IO

from csxa_data.errors import SourceError


def one_line(text) -> str:
    """``text`` on one line, white space collapsed, at most 300 characters (for messages)."""
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


class HeaderWatch:
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


class PacedReader(io.RawIOBase):
    """A network stream whose stalls become a clear :class:`SourceError`: no byte for
    ``sources.timeout`` seconds (each read's timeout), or fewer than ``sources.min_rate`` bytes a
    second over each ``sources.timeout`` seconds spent waiting for the server (a server trickling a
    byte at a time). Only time inside reads counts: a consumer that pauses (a slow model between
    batches) is not the server being slow."""

    def __init__(self, response, where: str, timeout: float, min_rate: int):
        self.response, self.where, self.timeout, self.min_rate = response, where, timeout, min_rate
        self.waited, self.window_bytes = 0.0, 0
        # read1: what one receive brings; read(n) would wait, for ever if trickled, until n bytes came
        self._read = getattr(response, "read1", response.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        where = self.where
        started = time.monotonic()
        try:
            data = self._read(len(buffer))
        except TimeoutError:
            raise SourceError(
                f"the server stopped sending for {self.timeout:g} s (sources.timeout)", path=where
            ) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, truncated chunked body, ...
            raise SourceError(
                f"the transfer broke off ({type(exc).__name__}: {one_line(str(exc))})", path=where
            ) from None
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - a registry's file system raises its own kinds
            raise SourceError(
                f"the transfer broke off ({type(exc).__name__}: {one_line(str(exc)) or 'no reason given'})", path=where
            ) from None
        self.waited += time.monotonic() - started
        self.window_bytes += len(data)
        if data and self.waited >= self.timeout:
            if self.window_bytes < self.min_rate * self.waited:
                raise SourceError(
                    f"the server sent {self.window_bytes:,} bytes in {self.waited:.0f} s, under "
                    f"sources.min_rate ({self.min_rate:,} bytes/s)",
                    path=where,
                )
            self.waited, self.window_bytes = 0.0, 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.response.close()
        super().close()


def read_at_most(stream: IO[bytes], limit: int, where: str) -> bytes:
    """At most ``limit`` bytes of ``stream`` (fewer at its end); a read error names ``where``."""
    chunks, total = [], 0
    while total < limit:
        try:
            chunk = stream.read(min(1 << 20, limit - total))
        except SourceError:
            raise
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot read ({type(exc).__name__}: {exc})", path=where) from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


class HashingReader(io.RawIOBase):
    """Pass bytes through, counting them and hashing them (sha256 for ``shards.json``, md5 for the
    registry's published hashes), refusing more than ``cap``."""

    def __init__(self, stream: IO[bytes], cap: int, where: str):
        self.stream, self.cap, self.where = stream, cap, where
        self.digest, self.md5, self.size = hashlib.sha256(), hashlib.md5(), 0  # noqa: S324 (DVC's address)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.size += len(data)
        if self.size > self.cap:
            raise SourceError(f"more than {self.cap:,} bytes (sources.max_shard_bytes)", path=self.where)
        self.digest.update(data)
        self.md5.update(data)
        buffer[: len(data)] = data
        return len(data)
