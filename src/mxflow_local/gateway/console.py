"""The operations console on the local API (issue 14): the static site of `console/` at `/console/`, the
state machines' ASL beside it (`/console/asl/<name>.asl.json`, from `statemachines/`), its
configuration (`/console/config.json`: same origin, local sign-in) and the local sign-in.

In AWS the same files are to be served from S3 behind CloudFront, people signing in through the Cognito
hosted UI (console/js/auth.js; the template's resources for it are not built yet, docs/console.md);
locally a person signs in with a token from `mxflow token`, or
with the one-time link `mxflow local up` prints: `/console/#/signin/<code>`. The code is in the
fragment, so it never reaches a server log or a Referer; the page posts it once to
`/console/session`, which answers a token with every scope for the local client, and the code is spent.
Codes expire after SIGN_IN_CODE_TTL_SECONDS. Loopback clients only, like the admin routes.
"""
from __future__ import annotations

import json
import mimetypes
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mxflow_local.gateway.admin import LOOPBACK, json_reply
from mxflow_local.gateway.proxy import HttpReply, HttpRequest

CONSOLE_PREFIX = "/console"
SESSION_PATH = f"{CONSOLE_PREFIX}/session"
CONFIG_PATH = f"{CONSOLE_PREFIX}/config.json"
ASL_PREFIX = f"{CONSOLE_PREFIX}/asl/"
SIGN_IN_CODE_TTL_SECONDS = 600
CONSOLE_SCOPES = ("payments/submit", "payments/read", "payments/decide", "payments/operate")
CONSOLE_CLIENT = "local"   # `mxflow token`'s default client: the console sees the payments it submits
TOKEN_TTL_SECONDS = 8 * 3600
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml"}
# The page loads nothing from elsewhere and talks to its own origin only (the deployed console's policy,
# template.yaml ConsoleResponseHeadersPolicy, adds the hosted UI's domain to connect-src: the code exchange).
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
]


def is_console_path(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


class ConsoleSite:
    """The console's files and its local sign-in for one LocalApi."""

    def __init__(self, site_dir: Path, asl_dir: Path, issue_token, *, client_id: str = CONSOLE_CLIENT):
        self.site_dir = site_dir.resolve()
        self.asl_dir = asl_dir.resolve()
        self.issue_token = issue_token   # (scopes, client_id, ttl=...) -> str
        self.client_id = client_id
        self._codes: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def beside(cls, template_path: Path, issue_token) -> "ConsoleSite | None":
        """The console of the project a template belongs to (`console/` beside it), None without one."""
        root = Path(template_path).resolve().parent
        site = root / "console"
        return cls(site, root / "statemachines", issue_token) if (site / "index.html").is_file() else None

    # -- the one-time sign-in ------------------------------------------------------------------------

    def sign_in_code(self) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._codes = {c: t for c, t in self._codes.items() if t > now}
            self._codes[code] = now + SIGN_IN_CODE_TTL_SECONDS
        return code

    def sign_in_link(self, base_url: str) -> str:
        return f"{base_url}{CONSOLE_PREFIX}/#/signin/{self.sign_in_code()}"

    def _redeem(self, request: HttpRequest) -> HttpReply:
        try:
            code = json.loads(request.body or b"null")["code"]
        except (ValueError, TypeError, KeyError):
            return json_reply(400, {"message": "send {\"code\": ...} from the sign-in link"})
        with self._lock:
            expires = self._codes.pop(code, None) if isinstance(code, str) else None
        if expires is None or expires < time.monotonic():
            return json_reply(401, {"message": "this sign-in link was used or has expired; ask `mxflow local up` "
                                               "for a new one, or paste a token from `mxflow token`"})
        token = self.issue_token(list(CONSOLE_SCOPES), self.client_id, ttl=TOKEN_TTL_SECONDS)
        reply = json_reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECONDS,
                                 "scope": " ".join(CONSOLE_SCOPES)})
        reply.headers.append(("Cache-Control", "no-store"))
        return reply

    # -- the files -----------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.source_ip not in LOOPBACK:
            return json_reply(403, {"message": "the local console answers loopback clients only"})
        path = unquote(urlsplit(request.raw_path).path)   # request.path drops the trailing slash
        if path == SESSION_PATH:
            return self._redeem(request) if request.method == "POST" else _not_allowed("POST")
        if request.method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD")
        if path == CONSOLE_PREFIX:
            return HttpReply(301, [("Location", CONSOLE_PREFIX + "/")], b"")
        if path == CONFIG_PATH:
            return self._reply(200, TYPES[".json"], json.dumps(
                {"mode": "local", "apiBase": "", "sessionUrl": SESSION_PATH}).encode("utf-8"), cache="no-store")
        if path.startswith(ASL_PREFIX):
            return self._file(self.asl_dir, path[len(ASL_PREFIX):], only_suffix=".asl.json")
        relative = path[len(CONSOLE_PREFIX) + 1:]
        relative = relative + "index.html" if relative == "" or relative.endswith("/") else relative
        return self._file(self.site_dir, relative)

    def _file(self, root: Path, relative: str, only_suffix: str | None = None) -> HttpReply:
        target = (root / relative).resolve()
        if (root not in target.parents or not target.is_file()
                or (only_suffix and not target.name.endswith(only_suffix))):
            return json_reply(404, {"message": "no such console file"})
        kind = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return self._reply(200, kind, target.read_bytes(), cache="no-cache")

    @staticmethod
    def _reply(status: int, content_type: str, body: bytes, *, cache: str) -> HttpReply:
        return HttpReply(status, [("Content-Type", content_type), ("Cache-Control", cache), *SECURITY_HEADERS], body)


def _not_allowed(allowed: str) -> HttpReply:
    reply = json_reply(405, {"message": f"allowed: {allowed}"})
    reply.headers.append(("Allow", allowed))
    return reply
