"""Local stand-in for an Amazon Cognito user pool and API Gateway's COGNITO_USER_POOLS authorizer.

`mxflow local up` makes one RSA key at start-up (`LocalTokenIssuer.generate`), signs access tokens with
it (RS256, the claims a Cognito client-credentials access token carries) and checks the tokens on every
request the way API Gateway's Cognito authorizer does (`CognitoAuthorizer.authorize`):

- no token, a token that is not a JWT, a bad signature, an unknown key id, another issuer, an expired
  token, or the wrong kind of token (an ID token where the method has scopes, an access token where it
  has none) -> 401 (`Unauthorized`, or `The incoming token has expired`);
- a valid access token with none of the method's scopes -> 403 (authorized if any token scope equals
  any method scope);
- otherwise the claims reach the integration as `requestContext.authorizer.claims`, every value a
  string, `exp`/`iat` as dates, as API Gateway REST APIs pass them (`gateway_claims`).

Because `mxflow token` runs in another process, the server publishes its key in one file (mode 0600)
in the state directory (`$MXFLOW_STATE_DIR`, default `~/.mxflow/`): `publish_signing_key` /
`load_published_issuer` / `withdraw_signing_key`. The file is the local server's key, never an AWS
credential; nothing here talks to AWS.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mxflow_local.state import state_dir

ALGORITHM = "RS256"
DEFAULT_CLIENT_ID = "local"
DEFAULT_TTL_SECONDS = 3600
SIGNING_KEY_FILE = "local-signing-key.json"
STATE_FORMAT = 1


class TokenError(Exception):
    """A token the authorizer refuses; `expired` selects API Gateway's message for that case."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


class NoRunningServer(Exception):
    """No `mxflow local up` has published a signing key (or the one that did is gone)."""


def cognito_issuer(region: str, user_pool_id: str) -> str:
    """The `iss` of tokens from a Cognito user pool (what the authorizer compares)."""
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


class LocalTokenIssuer:
    """An RSA signing key with an issuer URL: issues Cognito-shaped tokens and verifies them."""

    def __init__(self, private_key: rsa.RSAPrivateKey, *, issuer: str, kid: str):
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self.issuer = issuer
        self.kid = kid

    @classmethod
    def generate(cls, issuer: str) -> "LocalTokenIssuer":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, issuer=issuer, kid=uuid.uuid4().hex)

    # -- issuing ---------------------------------------------------------------------------------
    def issue_token(
        self,
        scopes,
        client_id: str = DEFAULT_CLIENT_ID,
        *,
        ttl: int = DEFAULT_TTL_SECONDS,
        token_use: str = "access",
        now: float | None = None,
    ) -> str:
        """A signed token. `token_use="access"` gives a client-credentials access token (`scope`,
        `client_id`, `sub` = client id); `"id"` an ID token (`aud` = client id, no scope)."""
        if isinstance(scopes, str):
            scopes = [scopes]
        scopes = [s for s in scopes if s]
        if not client_id:
            raise ValueError("client_id must not be empty")
        if token_use not in ("access", "id"):
            raise ValueError("token_use must be 'access' or 'id'")
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": client_id,
            "token_use": token_use,
            "auth_time": issued,
            "iss": self.issuer,
            "exp": issued + int(ttl),
            "iat": issued,
            "jti": str(uuid.uuid4()),
            "version": 2,
        }
        if token_use == "access":
            claims["client_id"] = client_id
            claims["scope"] = " ".join(scopes)
        else:
            claims["aud"] = client_id
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    # -- verifying -------------------------------------------------------------------------------
    def verify(self, token: str, *, now: float | None = None) -> dict:
        """The token's claims if it is well formed, signed by this key, from this issuer and not
        expired; raises TokenError otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"not a JWT: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"unsupported algorithm {header.get('alg')!r}")
        if header.get("kid") != self.kid:
            raise TokenError("unknown signing key")
        options = {"require": ["exp", "iat", "iss", "token_use"], "verify_aud": False}
        if now is not None:
            options["verify_exp"] = False
        try:
            claims = jwt.decode(token, self._public_key, algorithms=[ALGORITHM], issuer=self.issuer, options=options)
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired", expired=True) from None
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        if now is not None and int(claims["exp"]) <= now:
            raise TokenError("token expired", expired=True)
        if claims.get("token_use") not in ("access", "id"):
            raise TokenError("token_use is neither access nor id")
        return claims

    # -- sharing with `mxflow token` -------------------------------------------------------------
    def to_state(self) -> dict:
        pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {"format": STATE_FORMAT, "issuer": self.issuer, "kid": self.kid, "privateKeyPem": pem.decode("ascii")}

    @classmethod
    def from_state(cls, state: dict) -> "LocalTokenIssuer":
        key = serialization.load_pem_private_key(state["privateKeyPem"].encode("ascii"), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the signing key is not an RSA key")
        return cls(key, issuer=state["issuer"], kid=state["kid"])


@dataclass(frozen=True)
class AuthOutcome:
    """What the authorizer decided: status 200 (allowed, with claims), 401 or 403 (with the message
    API Gateway puts in `$context.error.message`)."""

    status: int
    message: str = ""
    claims: dict | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


class CognitoAuthorizer:
    """API Gateway's COGNITO_USER_POOLS authorizer, for one identity header and one issuer."""

    def __init__(self, issuer: LocalTokenIssuer, *, header: str = "Authorization"):
        self.issuer = issuer
        self.header = header

    def authorize(self, header_value: str | None, scopes, *, now: float | None = None) -> AuthOutcome:
        token = (header_value or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            return AuthOutcome(401, "Unauthorized")
        try:
            claims = self.issuer.verify(token, now=now)
        except TokenError as exc:
            return AuthOutcome(401, "The incoming token has expired" if exc.expired else "Unauthorized")
        scopes = list(scopes or ())
        if scopes:
            # Method scopes: only an access token can satisfy them; any match authorizes.
            if claims["token_use"] != "access":
                return AuthOutcome(401, "Unauthorized")
            granted = set(str(claims.get("scope", "")).split())
            if not granted.intersection(scopes):
                return AuthOutcome(403, "User is not authorized to access this resource")
        elif claims["token_use"] != "id":
            # Without method scopes the Cognito authorizer takes ID tokens only.
            return AuthOutcome(401, "Unauthorized")
        return AuthOutcome(200, claims=claims)


def _gateway_date(epoch) -> str:
    # Java's Date.toString(), which API Gateway uses for exp and iat: "Sun Dec 17 07:28:12 UTC 2017"
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")


def gateway_claims(claims: dict) -> dict:
    """The claims as a REST API passes them in `requestContext.authorizer.claims`: strings only."""
    shaped = {}
    for name, value in claims.items():
        if name in ("exp", "iat") and isinstance(value, (int, float)):
            shaped[name] = _gateway_date(value)
        elif isinstance(value, bool):
            shaped[name] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            shaped[name] = "[" + ", ".join(str(v) for v in value) + "]"
        elif isinstance(value, dict):
            shaped[name] = json.dumps(value, separators=(",", ":"))
        else:
            shaped[name] = str(value)
    return shaped


# -- the published key -------------------------------------------------------------------------------
def signing_key_path(directory: Path | None = None) -> Path:
    return (directory or state_dir()) / SIGNING_KEY_FILE


def publish_signing_key(issuer: LocalTokenIssuer, *, url: str, directory: Path | None = None) -> Path:
    """Write the key (mode 0600, atomically) with the server's URL and process id."""
    path = signing_key_path(directory)
    write_private_json(path, issuer.to_state() | {"url": url, "pid": os.getpid(), "createdAt": int(time.time())})
    return path


def write_private_json(path: Path, state: dict) -> None:
    """Write a state file of the running server: JSON, mode 0600, atomically (its folder 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def withdraw_signing_key(issuer: LocalTokenIssuer, directory: Path | None = None) -> None:
    """Remove the published key if it is still this issuer's (another server may have replaced it)."""
    path = signing_key_path(directory)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if state.get("kid") == issuer.kid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def process_alive(pid) -> bool:
    """True while the process `pid` (as a state file records it) exists."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_published_issuer(directory: Path | None = None) -> tuple[LocalTokenIssuer, dict]:
    """The running server's issuer and its state (url, pid); NoRunningServer when there is none."""
    path = signing_key_path(directory)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoRunningServer(f"no running 'mxflow local up' found (no signing key at {path}); start it first") from None
    except (OSError, ValueError) as exc:
        raise NoRunningServer(f"cannot read the local signing key {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise NoRunningServer(f"{path} is not a signing key written by this version of mxflow")
    if not process_alive(state.get("pid")):
        raise NoRunningServer(
            f"the 'mxflow local up' that wrote {path} (pid {state.get('pid')}) is no longer running; start it again"
        )
    try:
        return LocalTokenIssuer.from_state(state), state
    except (KeyError, ValueError, TypeError) as exc:
        raise NoRunningServer(f"cannot load the local signing key {path}: {exc}") from None
