"""A local stand-in for an OpenAI-compatible chat completions endpoint, for the suggester tests.

`reply` decides the answer per request: a string (sent as the completion's content), an int
(an HTTP status with an error body), `RAW:<text>` (a body that is not a completion) or `HANG`
(the handler blocks until `release()`: a server that never answers, not a short sleep).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "HANG"


class StandIn:
    def __init__(self, reply):
        self.reply = reply
        self.requests: list[dict] = []
        self._released = threading.Event()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "json": body})
                answer = standin.reply(body) if callable(standin.reply) else standin.reply
                if answer == HANG:
                    standin._released.wait()
                    return
                if isinstance(answer, int):
                    self._send(answer, {"error": {"message": "stand-in failure"}})
                elif answer.startswith("RAW:"):
                    self._send(200, answer[4:])
                else:
                    self._send(200, {"id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": answer}}]})

            def _send(self, status, payload):
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def release(self):
        self._released.set()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.shutdown()
        self.server.server_close()
