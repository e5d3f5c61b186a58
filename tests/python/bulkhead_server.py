"""Starts the real `bulkhead serve` (release build) on a free port of 127.0.0.1 with a
fresh data directory and the repository's models, and mints tokens with the real CLI.

The binary is $BULKHEAD_BIN, else $CARGO_TARGET_DIR/release/bulkhead, else
target/release/bulkhead (build it first: `cargo build --release`)."""

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    if os.environ.get("BULKHEAD_BIN"):
        return os.environ["BULKHEAD_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    path = target / "release" / "bulkhead"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `cargo build --release` first")
    return str(path)


def contract(prefix: str) -> Path:
    for path in sorted((ROOT / "data" / "contracts").iterdir()):
        if path.name.startswith(prefix):
            return path
    raise RuntimeError(f"no sample contract starting with {prefix}")


class Server:
    def __init__(self, *serve_flags: str, before_serve=None):
        """`before_serve(server)`, when given, runs after `init` (tenants can be created)
        and returns more `serve` flags (e.g. `--config` naming those tenants)."""
        self.tmp = tempfile.TemporaryDirectory(prefix="bulkhead-py-")
        self.data = self.tmp.name
        self.cli("init")
        if before_serve is not None:
            serve_flags = (*serve_flags, *before_serve(self))
        self.process = subprocess.Popen(
            self.args("serve", "--listen", "127.0.0.1:0", *serve_flags),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"unexpected first line from serve: {line!r}")
        self.base = line[len("listening on "):]

    def args(self, *command):
        return [binary(), "--data-dir", self.data, "--models-dir", str(ROOT / "models"), *command]

    def cli(self, *command) -> str:
        done = subprocess.run(self.args(*command), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command}: {done.stderr}")
        return done.stdout.strip()

    def tenant(self, name: str) -> str:
        return json.loads(self.cli("tenant", "create", name, "--json"))["tenant_id"]

    def token(self, tenant: str, user: str, *roles: str, ttl: str = "1h") -> str:
        args = ["token", "--tenant", tenant, "--user", user, "--ttl", ttl]
        for role in roles:
            args += ["--role", role]
        return self.cli(*args)

    def tier_of(self, tenant: str) -> str:
        """The tenant's tier as the appliance's own tenant list has it."""
        listed = json.loads(self.cli("tenant", "list", "--json"))["tenants"]
        return next(t["tier"] for t in listed if t["tenant_id"] == tenant)

    def platform_token(self) -> str:
        return self.cli("token", "--platform-admin")

    def upload(self, tenant: str, token: str, path: Path) -> str:
        """Uploads with wait=true (indexed on return); returns the document id."""
        boundary = "bulkhead-test-boundary"
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: text/plain\r\n\r\n"
        ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(
            f"{self.base}/v1/tenants/{tenant}/documents?wait=true",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)["document_id"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.tmp.cleanup()


def wait_for(predicate, timeout=60.0, step=0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(step)
