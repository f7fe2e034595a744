"""The HTTP plumbing the three sandbox servers share: a threaded stdlib server on loopback,
request parsing, the request log, and the generic part of fault injection.

Each service is an `App` (`handle(request) -> Response`); this module turns faults that look
the same for every service (drop, slow, malformed, a raw status) into behaviour, and asks the
app for service-specific ones (rate limits, 5xx pages, bad credentials).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dunning_pipeline.sandbox.faults import Fault, Faults

REQUEST_LOG_LIMIT = 20_000  # older entries are dropped (the benchmark makes many requests)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # http.client.HTTPMessage (case-insensitive)
    body: bytes
    json: Any
    base_url: str
    fault: Fault | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    @classmethod
    def json(cls, obj, status: int = 200, headers: dict | None = None) -> "Response":
        return cls(status, json.dumps(obj, ensure_ascii=False).encode(), dict(headers or {}))

    @classmethod
    def html(cls, body: bytes, status: int, headers: dict | None = None) -> "Response":
        return cls(status, body, dict(headers or {}), "text/html")


class App:
    """One service. Subclasses set `service` and implement `handle`."""

    service = ""
    server_header = "nginx"

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def fault_response(self, fault: Fault, req: Request) -> Response | None:
        """A response for a service-specific fault; None: let `handle` see `req.fault`."""
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, handler, app: App, faults: Faults, log: list):
        super().__init__(address, handler)
        self.app = app
        self.faults = faults
        self.log = log
        self.log_lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
            self.connections.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with real servers
    disable_nagle_algorithm = True  # headers and body leave in one segment: no 40 ms delayed-ACK stall
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def version_string(self) -> str:
        return self.server.app.server_header

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def _dispatch(self) -> None:
        server = self.server
        app = server.app
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        parsed = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        host = self.headers.get("Host") or "%s:%s" % server.server_address[:2]
        req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                      self.headers, body, parsed, f"http://{host}")
        fault = server.faults.take(app.service, parts.path)
        req.fault = fault
        entry = {"method": self.command, "path": parts.path,
                 "query": {k: v[-1] for k, v in req.query.items()}, "json": parsed,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "fault": fault.kind if fault else None, "status": None}
        with server.log_lock:
            if len(server.log) >= REQUEST_LOG_LIMIT:
                del server.log[: REQUEST_LOG_LIMIT // 2]
            server.log.append(entry)
        if fault is not None:
            if fault.kind == "drop":
                entry["status"] = "dropped"
                self._drop()
                return
            if fault.kind == "hang":
                entry["status"] = "hung"
                server.faults.wait_released()
                self._drop()
                return
            if fault.kind == "empty":
                return self._send(Response(200, b"", {}), entry)
            if fault.kind == "slow":
                time.sleep(float(fault.opt("delay")))
                req.fault = None
            elif fault.kind == "malformed":
                return self._send(Response(200, b'{"result": [{"id": 1, "na', {}), entry)
            elif fault.kind == "status":
                headers = {"Retry-After": str(fault.opt("retry_after"))} if fault.opt("retry_after") else {}
                return self._send(Response(int(fault.opt("status")), str(fault.opt("body")).encode(),
                                           headers, str(fault.opt("content_type"))), entry)
            else:
                resp = app.fault_response(fault, req)
                if resp is not None:
                    return self._send(resp, entry)
        try:
            resp = app.handle(req)
        except Exception as exc:  # a sandbox bug must show up as a 500, not a hung client
            import traceback
            traceback.print_exc()
            resp = Response.json({"error": "sandbox internal error", "detail": repr(exc)}, 500)
        if fault is not None and fault.kind in ("truncated", "reset_mid_body"):
            entry["status"] = fault.kind
            self._send_cut(resp, reset=fault.kind == "reset_mid_body")
            return
        if fault is not None and fault.kind == "lost_answer":
            # The work is done (a message posted, a record written), but the answer never arrives.
            entry["status"] = "answer_lost"
            self._drop()
            return
        self._send(resp, entry)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_cut(self, resp: Response, *, reset: bool) -> None:
        """The answer's status, headers (the full Content-Length) and half its body, then the
        connection closed (FIN) or reset (RST): what a crashing upstream or proxy sends."""
        self.close_connection = True
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in resp.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(resp.body[: max(1, len(resp.body) // 2)])
            self.wfile.flush()
            if reset:  # SO_LINGER 0: close() sends RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, resp: Response, entry: dict) -> None:
        entry["status"] = resp.status
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for name, value in resp.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class SandboxHTTPServer:
    """One app served on (host, port) from a daemon thread; port 0 picks a free port."""

    def __init__(self, app: App, faults: Faults, log: list, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self._server = _Server((host, port), _Handler, app, faults, log)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sandbox-{self.app.service}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.faults.release()  # no request stays held by a "hang" fault
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
