"""A fake Anthropic Messages API that the real Claude Code CLI can drive.

    with FakeAnthropic(api_key="sk-ant-test", bash_command="echo hi >> README.md") as api:
        env = {"ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "sk-ant-test"}
        ... run claude -p ...
        api.requests            # [ApiRequest(method, path, query, headers, body)]
        api.agent_requests()    # the main agent loop's POST /v1/messages

HEAD / and GET / answer 200 without a key (Claude Code probes the base
URL). Everything else needs `x-api-key: <api_key>` (401 with Anthropic's
error JSON otherwise). POST /v1/messages (any query, e.g. ?beta=true)
answers a message, as server-sent events when the body says
"stream": true; POST /v1/messages/count_tokens answers {"input_tokens": N}.

The agent is scripted: a request whose `tools` include one named "Bash"
and whose conversation holds no tool_result yet gets a tool_use of Bash
running `bash_command` (stop_reason tool_use); once a tool_result is in
the conversation it gets `final_text` (end_turn). Any other request (title
or summary generation, quota checks) gets `reply_text`.

What Claude Code 2.1.197 sent, run on the host as an unprivileged user with
`claude -p PROMPT --dangerously-skip-permissions --output-format stream-json
--verbose --max-turns 5 < /dev/null`, ANTHROPIC_BASE_URL=http://127.0.0.1:PORT,
ANTHROPIC_API_KEY and CLAUDE_CODE_MAX_RETRIES=1 (about 0.6 to 1 s a run):
- `HEAD /`, no key, User-Agent Bun/1.4.0: a connection warm-up. It is not
  sent when HTTPS_PROXY is set.
- one `POST /v1/messages?beta=true` per turn, "stream": true, a body of
  about 77 KB with Content-Length (not chunked) and headers x-api-key,
  anthropic-version: 2023-06-01, anthropic-beta (a list),
  anthropic-dangerous-direct-browser-access: true, x-app: cli,
  user-agent claude-cli/2.1.197, x-stainless-*, x-claude-code-session-id,
  accept: application/json, accept-encoding: gzip, deflate, br, zstd.
  The agent loop's requests carry 24-25 tools (Bash among them) and model
  claude-opus-4-8 unless one is chosen.
- without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, one more streamed
  POST /v1/messages to the base URL: title generation, no tools, with
  output_config.format a json_schema asking for {"title": ...}. It also
  looks up api.anthropic.com itself (DNS), or, with HTTPS_PROXY set, sends
  about six `CONNECT api.anthropic.com:443` to the proxy. A proxy that
  refuses them at once costs nothing; one that holds them unanswered made
  the run take 8 s instead of 0.7 s, but it still finished.
- with the flag: HEAD / and the agent's requests only, no DNS at all.
- a stream cut after message_start: the same request again without
  "stream" (plain JSON), and the run goes on.
- a 401 (wrong key) with CLAUDE_CODE_MAX_RETRIES=1: two POSTs, exit code 1
  after 1 s, a result event with "subtype":"success", "is_error":true,
  "api_error_status":401.
count_tokens was never called.
"""
import collections
import json
import secrets

from ._server import BackgroundServer, QuietHandler

ApiRequest = collections.namedtuple("ApiRequest", "method path query headers body")

DEFAULT_COMMAND = "cd /home/baponi/repo && echo 'edited by claude' >> README.md"


def error_body(etype, message):
    """Anthropic's error shape."""
    return {"type": "error", "error": {"type": etype, "message": message}}


def has_tool_result(body):
    """Whether any message of a Messages request holds a tool_result."""
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return True
    return False


def is_agent_request(body, tool="Bash"):
    """Whether a Messages request offers the tool `tool`: the agent loop's."""
    return any(isinstance(t, dict) and t.get("name") == tool for t in body.get("tools") or [])


def _estimate_tokens(raw):
    return max(1, len(raw) // 4)


class _ApiHandler(QuietHandler):
    def do_HEAD(self):
        self._handle()

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self):
        fake = self.fake
        path, _, query = self.path.partition("?")
        raw = self.read_body() if self.command in ("POST", "PUT", "DELETE") else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake.lock:
            fake.requests.append(ApiRequest(self.command, path, query, headers, body))

        if path == "/" and self.command in ("HEAD", "GET"):
            return self._send_json(200, {"ok": True})
        if headers.get("x-api-key") != fake.api_key:
            return self._send_json(401, error_body("authentication_error", "invalid x-api-key"))
        if self.command != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return self._send_json(404, error_body("not_found_error", f"Not found: {path}"))
        if not isinstance(body, dict):
            return self._send_json(400, error_body("invalid_request_error",
                                                   "the body is not a JSON object"))
        if path == "/v1/messages/count_tokens":
            return self._send_json(200, {"input_tokens": _estimate_tokens(raw)})
        with fake.lock:
            queued = fake.queued_errors.pop(0) if fake.queued_errors else None
        if queued:
            status, etype, message = queued
            return self._send_json(status, error_body(etype, message))
        blocks, stop = fake.reply_for(body)
        model = body.get("model") or "claude-fake"
        usage_in = _estimate_tokens(raw)
        if body.get("stream"):
            with fake.lock:
                cut = fake.cut_streams > 0
                fake.cut_streams -= cut
            self._stream(model, blocks, stop, usage_in, cut=cut)
        else:
            msg = self._message(model, blocks, stop, usage_in)
            self._send_json(200, msg)

    def _common_headers(self):
        self.send_header("request-id", "req_" + secrets.token_hex(12))
        self.send_header("anthropic-organization-id", "00000000-0000-0000-0000-000000000000")

    def _send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._common_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    @staticmethod
    def _message(model, blocks, stop, usage_in):
        return {
            "id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant",
            "model": model, "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": 12,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def _event(self, name, data):
        payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        self.write_chunk(payload)

    def _stream(self, model, blocks, stop, usage_in, cut=False):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()
        start = self._message(model, [], None, usage_in)
        start["usage"]["output_tokens"] = 1
        self._event("message_start", {"type": "message_start", "message": start})
        self._event("ping", {"type": "ping"})
        if cut:
            # Hang up mid-stream, no terminating chunk: a dropped connection.
            self.close_connection = True
            return
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                self._event("content_block_start", {"type": "content_block_start", "index": i,
                                                    "content_block": {"type": "text", "text": ""}})
                text = b["text"]
                half = len(text) // 2
                for piece in (text[:half], text[half:]):
                    if piece:
                        self._event("content_block_delta", {
                            "type": "content_block_delta", "index": i,
                            "delta": {"type": "text_delta", "text": piece}})
            else:
                self._event("content_block_start", {
                    "type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"],
                                      "input": {}}})
                js = json.dumps(b["input"])
                third = max(1, len(js) // 3)
                for piece in ("", js[:third], js[third:2 * third], js[2 * third:]):
                    self._event("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": piece}})
            self._event("content_block_stop", {"type": "content_block_stop", "index": i})
        self._event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 12}})
        self._event("message_stop", {"type": "message_stop"})
        self.end_chunks()


class FakeAnthropic(BackgroundServer):
    """The fake API (see the module's docstring).

    Arguments: api_key (required x-api-key), host (a 127.0.0.0/8 address),
    port (0: a free one), tls (None, tls.CertPaths or ssl.SSLContext),
    bash_command, final_text, reply_text, tool ("Bash").
    Attributes: url, host, port; requests (ApiRequest per request, in
    order: method, path without query, query, headers with lower-case
    names, parsed JSON body or raw bytes or None).
    To script failures: append (status, error_type, message) to
    queued_errors to fail the next POST /v1/messages with that error; set
    cut_streams = N to hang up the next N streamed answers after
    message_start (Claude Code then repeats the request without stream)."""

    handler_class = _ApiHandler

    def __init__(self, api_key, host="127.0.0.1", port=0, tls=None,
                 bash_command=DEFAULT_COMMAND,
                 final_text="I appended a line to README.md.",
                 reply_text="Edit README", tool="Bash"):
        super().__init__(host=host, port=port, tls=tls)
        self.api_key = api_key
        self.bash_command = bash_command
        self.final_text = final_text
        self.reply_text = reply_text
        self.tool = tool
        self.requests = []
        self.queued_errors = []
        self.cut_streams = 0

    def reply_for(self, body):
        """The content blocks and stop_reason answering a Messages request."""
        if is_agent_request(body, self.tool):
            if not has_tool_result(body):
                return [{"type": "tool_use", "id": "toolu_" + secrets.token_hex(12),
                         "name": self.tool,
                         "input": {"command": self.bash_command,
                                   "description": "Append a line to README.md"}}], "tool_use"
            return [{"type": "text", "text": self.final_text}], "end_turn"
        return [{"type": "text", "text": self._plain_reply(body)}], "end_turn"

    def _plain_reply(self, body):
        # Title generation asks for JSON through a json_schema output
        # format ({"title": ...}): fill each string property.
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            props = (fmt.get("schema") or {}).get("properties") or {}
            return json.dumps({k: (self.reply_text if (v or {}).get("type") == "string" else None)
                               for k, v in props.items()})
        return self.reply_text

    def message_requests(self):
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    def agent_requests(self):
        return [r for r in self.message_requests()
                if isinstance(r.body, dict) and is_agent_request(r.body, self.tool)]
