"""Fixtures for the data tests: tiny official-format archives and a loopback HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class FixtureServer:
    """What the loopback server serves: ``files`` by name; ``truncate`` names are cut short."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)


def _handler(state: FixtureServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            state.requests.append(name)
            blob = state.files.get(name)
            if blob is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            # A truncated transfer: announce the full length, send half, hang up.
            self.wfile.write(blob[: len(blob) // 2] if name in state.truncate else blob)
            if name in state.truncate:
                self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def fixture_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    """A 127.0.0.1 HTTP server in a thread, reached through ``BNLAB_MIRROR``."""
    state = FixtureServer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/mirror"
    monkeypatch.setenv("BNLAB_MIRROR", state.url)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
