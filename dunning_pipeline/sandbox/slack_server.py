"""A local Slack Web API: `chat.postMessage` (with message `metadata`), `conversations.history`
and `conversations.replies` (metadata with `include_all_metadata`), `auth.test`,
`conversations.list`, and the three-step file upload (`files.getUploadURLExternal`, a POST of the
bytes to the returned `upload_url`, `files.completeUploadExternal`). Every authenticated answer
carries the token's scopes in `x-oauth-scopes`; reading history without `channels:history` is
`missing_scope`, as on Slack.

As in /work/shared/reference/SLACK.md: a bot token in `Authorization: Bearer` (or a `token`
form field); failures are HTTP 200 `{"ok": false, "error": ...}` (`not_authed`, `invalid_auth`,
`channel_not_found`, `not_in_channel`, `is_archived`, `no_text`, `invalid_blocks`,
`invalid_blocks_format`); Block Kit limits are checked; a rate-limit fault is HTTP 429 with
Retry-After. Accepted messages are recorded (`messages`) and served at
`GET /api/_sandbox/messages` so the CLI and the demo can print them; files shared by
`files.completeUploadExternal` are recorded (`files`, with their size and SHA-256) and served at
`GET /api/_sandbox/files`. As in Slack, the upload URL takes no token (it is pre-signed), a file
must be uploaded with the announced length before it can be completed, and a file is shared once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qs

from dunning_pipeline.sandbox.faults import Fault, cloudflare_page
from dunning_pipeline.sandbox.base_server import App, Request, Response

CHANNELS = [
    {"id": "C0SBXDUNN01", "name": "#dunning", "is_archived": False, "is_member": True, "is_private": False},
    {"id": "C0SBXALRT02", "name": "#dunning-alerts", "is_archived": False, "is_member": True, "is_private": False},
    {"id": "C0SBXOLDD03", "name": "#old-dunning", "is_archived": True, "is_member": True, "is_private": False},
    {"id": "C0SBXPRIV04", "name": "#private-finance", "is_archived": False, "is_member": False, "is_private": True},
]
TEAM_ID, BOT_USER_ID, BOT_ID, APP_ID = "T0SANDBOX", "U0SBXBOT01", "B0SBXBOT01", "A0SBXAPP01"
DEFAULT_SCOPES = ("chat:write", "channels:read", "groups:read", "channels:history", "groups:history",
                  "files:write")

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT = 40_000
UPLOAD_PATH = "/upload/v1/"
_BLOCK_TYPES = {"section", "header", "divider", "context", "actions", "image", "rich_text", "input",
                "file", "video", "markdown"}


def find_channel(ref: str) -> dict | None:
    """A channel by id, "#name" or "name"."""
    ref = (ref or "").strip()
    for ch in CHANNELS:
        if ref in (ch["id"], ch["name"], ch["name"].lstrip("#")):
            return ch
    return None


class SlackApp(App):
    service = "slack"
    server_header = "envoy"

    def __init__(self, token: str, messages: list | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.token = token
        self.scopes = set(DEFAULT_SCOPES)  # a test removes one to see the client cope
        self.messages = messages if messages is not None else []
        self.clock = clock or (lambda: datetime(2026, 3, 2, 23, 0, tzinfo=timezone.utc))
        self._ts_lock = threading.Lock()
        self._last_ts = 0
        self.files: list[dict] = []  # shared files, in order
        self._uploads: dict[str, dict] = {}  # file_id -> pending upload (filename, length, data)
        self._upload_keys: dict[str, str] = {}  # secret of an upload URL -> file_id

    def fault_response(self, fault: Fault, req: Request) -> Response | None:
        if fault.kind == "rate_limit":
            return Response.json({"ok": False, "error": "ratelimited"}, 429,
                                 {"Retry-After": str(fault.opt("retry_after"))})
        if fault.kind == "server_error":
            status = int(fault.opt("status"))
            headers = {"Retry-After": str(fault.opt("retry_after"))} if fault.opt("retry_after") else {}
            return Response.html(cloudflare_page(status, "slack.com"), status, headers)
        if fault.kind == "slack_error":
            return Response.json({"ok": False, "error": str(fault.opt("error"))})
        return None

    def handle(self, req: Request) -> Response:
        if req.path == "/api/_sandbox/messages" and req.method == "GET":
            return Response.json({"ok": True, "messages": list(self.messages)})
        if req.path == "/api/_sandbox/files" and req.method == "GET":
            return Response.json({"ok": True, "files": list(self.files)})
        if req.path.startswith(UPLOAD_PATH):
            return self._receive_upload(req)
        if not req.path.startswith("/api/"):
            return Response(404, b"Not Found", content_type="text/plain")
        method = req.path[len("/api/"):]
        args = self._args(req)
        if args is None:
            return Response.json({"ok": False, "error": "invalid_json"})
        token = None
        auth = req.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        elif args.get("token"):
            token = str(args["token"])
        if not token:
            return Response.json({"ok": False, "error": "not_authed"})
        if token != self.token or (req.fault is not None and req.fault.kind == "bad_credentials"):
            return Response.json({"ok": False, "error": "invalid_auth"})
        resp = self._method(method, args, req)
        resp.headers.setdefault("x-oauth-scopes", ",".join(sorted(self.scopes)))
        return resp

    def _method(self, method: str, args: dict, req: Request) -> Response:
        if method == "chat.postMessage":
            return self._post_message(args)
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, args)
        if method == "files.getUploadURLExternal":
            return self._get_upload_url(args, req.base_url)
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        if method == "auth.test":
            return Response.json({"ok": True, "url": "https://nordwind-sandbox.slack.com/",
                                  "team": "Nordwind Trading", "user": "dunning-bot",
                                  "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
                                  "is_enterprise_install": False})
        if method == "conversations.list":
            exclude_archived = str(args.get("exclude_archived", "false")).lower() == "true"
            channels = [{"id": c["id"], "name": c["name"].lstrip("#"), "is_channel": True,
                         "is_archived": c["is_archived"], "is_member": c["is_member"],
                         "is_private": c["is_private"]}
                        for c in CHANNELS if c["is_member"] or not c["is_private"]
                        if not (exclude_archived and c["is_archived"])]
            return Response.json({"ok": True, "channels": channels,
                                  "response_metadata": {"next_cursor": ""}})
        return Response.json({"ok": False, "error": "unknown_method"})

    def _history(self, method: str, args: dict) -> Response:
        channel = find_channel(str(args.get("channel") or ""))
        if channel is None:
            return Response.json({"ok": False, "error": "channel_not_found"})
        needed = "groups:history" if channel["is_private"] else "channels:history"
        if needed not in self.scopes:
            return Response.json({"ok": False, "error": "missing_scope", "needed": needed,
                                  "provided": ",".join(sorted(self.scopes))})
        if not channel["is_member"]:
            return Response.json({"ok": False, "error": "not_in_channel"})
        mine = [m for m in self.messages if m["channel"] == channel["id"]]
        if method == "conversations.replies":
            parent = str(args.get("ts") or "")
            found = [m for m in mine if m["ts"] == parent or m.get("thread_ts") == parent]
            if not any(m["ts"] == parent for m in found):
                return Response.json({"ok": False, "error": "thread_not_found"})
            found.sort(key=lambda m: float(m["ts"]))
        else:  # top-level messages (thread replies stay in their thread), newest first
            found = [m for m in mine if not m.get("thread_ts")]
            if args.get("oldest"):
                found = [m for m in found if float(m["ts"]) > float(args["oldest"])]
            if args.get("latest"):
                found = [m for m in found if float(m["ts"]) < float(args["latest"])]
            found.sort(key=lambda m: float(m["ts"]), reverse=True)
        start = int(args.get("cursor") or 0)
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        page = found[start:start + limit]
        with_meta = str(args.get("include_all_metadata", "false")).lower() in ("true", "1")
        messages = []
        for m in page:
            out = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": APP_ID,
                   "text": m.get("text") or "", "ts": m["ts"], "team": TEAM_ID}
            if m.get("thread_ts"):
                out["thread_ts"] = m["thread_ts"]
            if with_meta and isinstance(m.get("metadata"), dict):
                out["metadata"] = m["metadata"]
            messages.append(out)
        more = start + limit < len(found)
        return Response.json({"ok": True, "messages": messages, "has_more": more,
                              "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    @staticmethod
    def _args(req: Request) -> dict | None:
        args: dict = {k: v[-1] for k, v in req.query.items()}
        ctype = (req.headers.get("Content-Type") or "").lower()
        if req.body:
            if "json" in ctype:
                if not isinstance(req.json, dict):
                    return None
                args.update(req.json)
            else:
                form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
                args.update({k: v[-1] for k, v in form.items()})
        return args

    def _next_ts(self) -> str:
        """Unique, increasing "seconds.micros" timestamps from the sandbox clock."""
        with self._ts_lock:
            micros = int(self.clock().timestamp()) * 1_000_000
            micros = max(micros, self._last_ts + 100)
            self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _post_message(self, args: dict) -> Response:
        channel = find_channel(str(args.get("channel") or ""))
        if not args.get("channel") or channel is None:
            return Response.json({"ok": False, "error": "channel_not_found"})
        if channel["is_archived"]:
            return Response.json({"ok": False, "error": "is_archived"})
        if not channel["is_member"]:
            return Response.json({"ok": False, "error": "not_in_channel"})
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks) if blocks.strip() else None
            except ValueError:
                return Response.json({"ok": False, "error": "invalid_blocks_format",
                                      "response_metadata": {"messages": ["[ERROR] blocks is not valid JSON"]}})
        if blocks is not None and not isinstance(blocks, list):
            return Response.json({"ok": False, "error": "invalid_blocks_format",
                                  "response_metadata": {"messages": ["[ERROR] blocks must be an array"]}})
        text = args.get("text")
        if not text and not blocks and not args.get("attachments"):
            return Response.json({"ok": False, "error": "no_text"})
        if blocks:
            problems = validate_blocks(blocks)
            if problems:
                return Response.json({"ok": False, "error": "invalid_blocks",
                                      "response_metadata": {"messages": problems}})
        warnings = []
        if isinstance(text, str) and len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
            warnings.append("message_truncated")
        ts = self._next_ts()
        message = {"user": BOT_USER_ID, "type": "message", "ts": ts, "bot_id": BOT_ID,
                   "app_id": APP_ID, "text": text or "", "team": TEAM_ID}
        if blocks:
            message["blocks"] = blocks
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata) if metadata.strip() else None
            except ValueError:
                return Response.json({"ok": False, "error": "invalid_metadata_format"})
        if metadata is not None and not (isinstance(metadata, dict) and metadata.get("event_type")
                                         and isinstance(metadata.get("event_payload"), dict)):
            return Response.json({"ok": False, "error": "invalid_metadata_schema"})
        record = {k: v for k, v in args.items() if k != "token"}
        if metadata is not None:
            record["metadata"] = metadata
        record.update(text=text, ts=ts, channel=channel["id"], channel_name=channel["name"])
        if blocks is not None:
            record["blocks"] = blocks
        self.messages.append(record)
        body = {"ok": True, "channel": channel["id"], "ts": ts, "message": message}
        if warnings:
            body["response_metadata"] = {"warnings": warnings}
        return Response.json(body)


    # -- files: the three-step upload ------------------------------------------------------------
    def _get_upload_url(self, args: dict, base_url: str) -> Response:
        filename = str(args.get("filename") or "").strip()
        length = str(args.get("length") or "").strip()
        if not filename or not length.isdigit() or int(length) < 1:
            return Response.json({"ok": False, "error": "invalid_arguments", "response_metadata": {
                "messages": ["[ERROR] filename and a positive integer length are required"]}})
        with self._ts_lock:
            file_id = f"F0SBX{len(self._uploads) + 1:06d}"
            key = secrets.token_urlsafe(12)
            self._uploads[file_id] = {"filename": filename, "length": int(length), "data": None,
                                      "alt_txt": args.get("alt_txt"), "shared": False}
            self._upload_keys[key] = file_id
        return Response.json({"ok": True, "upload_url": f"{base_url.rstrip('/')}{UPLOAD_PATH}{key}",
                              "file_id": file_id})

    def _receive_upload(self, req: Request) -> Response:
        file_id = self._upload_keys.get(req.path[len(UPLOAD_PATH):])
        if req.method != "POST" or file_id is None:
            return Response(404, b"Not Found", content_type="text/plain")
        upload = self._uploads[file_id]
        data = _multipart_file(req) if "multipart/form-data" in (req.headers.get("Content-Type") or "") else req.body
        if len(data) != upload["length"]:
            # Slack refuses bytes that do not match the announced length.
            return Response(400, f"length mismatch: expected {upload['length']}, got {len(data)}".encode(),
                            content_type="text/plain")
        upload["data"] = data
        return Response(200, f"OK - {len(data)}".encode(), content_type="text/plain")

    def _complete_upload(self, args: dict) -> Response:
        files = args.get("files")
        try:
            files = json.loads(files) if isinstance(files, str) else files
        except ValueError:
            files = None
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("id") for f in files):
            return Response.json({"ok": False, "error": "invalid_arguments", "response_metadata": {
                "messages": ["[ERROR] files must be a JSON array of {id, title}"]}})
        channel = None
        if args.get("channel_id"):
            channel = find_channel(str(args["channel_id"]))
            if channel is None or channel["id"] != str(args["channel_id"]):  # an id, not a name
                return Response.json({"ok": False, "error": "channel_not_found"})
            if not channel["is_member"]:
                return Response.json({"ok": False, "error": "not_in_channel"})
        for f in files:
            upload = self._uploads.get(str(f["id"]))
            if upload is None or upload["data"] is None or upload["shared"]:
                return Response.json({"ok": False, "error": "file_not_found"})
        shared = []
        for f in files:
            upload = self._uploads[str(f["id"])]
            upload["shared"] = True
            record = {"id": str(f["id"]), "name": upload["filename"], "title": f.get("title") or upload["filename"],
                      "size": len(upload["data"]), "sha256": hashlib.sha256(upload["data"]).hexdigest(),
                      "channel": channel["id"] if channel else None, "thread_ts": args.get("thread_ts") or None,
                      "initial_comment": args.get("initial_comment") or None, "ts": self._next_ts()}
            self.files.append(record)
            shared.append({"id": record["id"], "name": record["name"], "title": record["title"],
                           "size": record["size"]})
        return Response.json({"ok": True, "files": shared})


def _multipart_file(req: Request) -> bytes:
    """The first part's body of a multipart/form-data upload (curl -F filename=@chart.png)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {req.headers.get('Content-Type')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + req.body)
    for part in message.iter_parts():
        return part.get_payload(decode=True) or b""
    return b""


def validate_blocks(blocks: list) -> list[str]:
    """Block Kit limits Slack enforces; each problem names the JSON pointer of the block."""
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"[ERROR] must provide at most {MAX_BLOCKS} items [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            problems.append(f"[ERROR] unsupported or missing block type [json-pointer:{where}/type]")
            continue
        kind = block["type"]
        if kind == "section":
            text = block.get("text")
            fields = block.get("fields")
            if text is None and not fields:
                problems.append(f"[ERROR] a section needs text or fields [json-pointer:{where}]")
            if text is not None:
                problems += _text_object(text, f"{where}/text", MAX_SECTION_TEXT)
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    problems.append(f"[ERROR] must provide at most {MAX_SECTION_FIELDS} items"
                                    f" [json-pointer:{where}/fields]")
                else:
                    for j, field in enumerate(fields):
                        problems += _text_object(field, f"{where}/fields/{j}", MAX_FIELD_TEXT)
        elif kind == "header":
            text = block.get("text")
            problems += _text_object(text, f"{where}/text", MAX_HEADER_TEXT, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                problems.append(f"[ERROR] must provide between 1 and {MAX_CONTEXT_ELEMENTS} items"
                                f" [json-pointer:{where}/elements]")
            else:
                for j, element in enumerate(elements):
                    if isinstance(element, dict) and element.get("type") in ("mrkdwn", "plain_text"):
                        problems += _text_object(element, f"{where}/elements/{j}", MAX_SECTION_TEXT)
    return problems


def _text_object(obj, where: str, limit: int, plain_only: bool = False) -> list[str]:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed or not isinstance(obj.get("text"), str):
        return [f"[ERROR] must be a text object of type {' or '.join(allowed)} [json-pointer:{where}]"]
    if not obj["text"]:
        return [f"[ERROR] must be more than 0 characters [json-pointer:{where}/text]"]
    if len(obj["text"]) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []
