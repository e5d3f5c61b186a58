"""A small, real OpenID Connect provider for the web app's sign-in tests (issue 13):
authorization code with PKCE (S256) only, standard library HTTP plus `cryptography` for
RS256 signatures.

- `GET /authorize` approves at once (no login page): it records the PKCE challenge, the
  nonce and the redirect URI against a fresh single-use code and redirects back with
  `code` and `state`. What it does next is set by the test: `deny` answers
  `error=access_denied`, `tamper_state` sends another state back, and `claims` are the
  claims (tenant, roles) of the next token.
- `POST /token` (form-encoded) exchanges the code once, for the same client and redirect
  URI, only with the verifier whose SHA-256 is the recorded challenge (`invalid_grant`
  otherwise), and answers with CORS headers for the app's origin only.
- Tokens are RS256 id_tokens (`aud` = the client id, `nonce` echoed) signed with a key
  whose JWKS file the appliance's config binds; the access token is opaque.
"""

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


class Provider:
    def __init__(self, client_id: str = "bulkhead-web", kid: str = "test-idp-1"):
        self.client_id = client_id
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes = {}
        self.lock = threading.Lock()
        self.app_origin = None
        self.claims = {}
        self.deny = False
        self.tamper_state = False
        self.refused_verifiers = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                provider.authorize(self)

            def do_OPTIONS(self):
                provider.answer(self, 204, b"", "text/plain")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                provider.token(self, self.rfile.read(length).decode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwks(self) -> dict:
        public = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                          "n": uint(public.n), "e": uint(public.e)}]}

    def write_jwks(self, directory: Path) -> Path:
        path = Path(directory) / "idp-jwks.json"
        path.write_text(json.dumps(self.jwks()))
        return path

    def config(self, jwks: Path, tenants, display_name: str = "Northwind SSO") -> str:
        """The appliance's `[[identity_provider]]` table for this provider."""
        return "\n".join([
            "[[identity_provider]]",
            f'issuer = "{self.issuer}"',
            f'jwks = "{jwks}"',
            "tenants = [" + ", ".join(f'"{t}"' for t in tenants) + "]",
            f'audience = "{self.client_id}"',
            f'display_name = "{display_name}"',
            f'authorization_endpoint = "{self.issuer}/authorize"',
            f'token_endpoint = "{self.issuer}/token"',
            f'client_id = "{self.client_id}"',
            'scopes = "openid profile"',
            "",
        ])

    def sign(self, claims: dict) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    # ---- endpoints ----

    def answer(self, handler, status, body: bytes, content_type, headers=()):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        if self.app_origin and handler.headers.get("Origin") == self.app_origin:
            handler.send_header("Access-Control-Allow-Origin", self.app_origin)
            handler.send_header("Access-Control-Allow-Methods", "POST")
            handler.send_header("Access-Control-Allow-Headers", "Content-Type")
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def authorize(self, handler):
        url = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path != "/authorize":
            return self.answer(handler, 404, b"not found", "text/plain")
        redirect = query.get("redirect_uri", "")
        valid = (
            query.get("response_type") == "code"
            and query.get("client_id") == self.client_id
            and query.get("code_challenge_method") == "S256"
            and len(query.get("code_challenge", "")) == 43
            and "openid" in query.get("scope", "").split()
            and redirect.startswith("http://127.0.0.1:")
            and query.get("state") and query.get("nonce")
        )
        if not valid:
            return self.answer(handler, 400, b"invalid authorization request", "text/plain")
        state = "forged-" + secrets.token_urlsafe(8) if self.tamper_state else query["state"]
        if self.deny:
            back = {"error": "access_denied", "state": state}
        else:
            code = secrets.token_urlsafe(24)
            with self.lock:
                self.codes[code] = {
                    "challenge": query["code_challenge"],
                    "redirect_uri": redirect,
                    "nonce": query["nonce"],
                    "claims": dict(self.claims),
                }
            back = {"code": code, "state": state}
        location = f"{redirect}?{urllib.parse.urlencode(back)}"
        self.answer(handler, 302, b"", "text/plain", [("Location", location)])

    def token(self, handler, body: str):
        form = dict(urllib.parse.parse_qsl(body))
        if urllib.parse.urlsplit(handler.path).path != "/token":
            return self.answer(handler, 404, b"{}", "application/json")

        def refuse(error, description):
            payload = json.dumps({"error": error, "error_description": description}).encode()
            self.answer(handler, 400, payload, "application/json")

        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return refuse("invalid_grant", "unknown or used code")
        if form.get("client_id") != self.client_id or form.get("redirect_uri") != grant["redirect_uri"]:
            return refuse("invalid_grant", "client or redirect URI differs")
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            self.refused_verifiers += 1
            return refuse("invalid_grant", "PKCE verification failed")
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "sso-user", "aud": self.client_id, "iat": now,
                  "exp": now + 600, "nonce": grant["nonce"], "roles": ["editor"]}
        claims.update(grant["claims"])
        tokens = {"token_type": "Bearer", "expires_in": 600, "id_token": self.sign(claims),
                  "access_token": secrets.token_urlsafe(32)}
        self.answer(handler, 200, json.dumps(tokens).encode(), "application/json")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
