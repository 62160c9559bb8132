"""Real object-store servers on 127.0.0.1 for tests and benchmarks: moto's S3 server (with
authentication on, so wrong keys are refused), gcp-storage-emulator for GCS (PyPI, in the dev
extra; it checks no credentials) and, when installed, Azurite for Azure Blob.

moto checks signatures only after its first `INITIAL_NO_AUTH_ACTION_COUNT` requests: those
create an IAM user with an allow-all policy and its access key; every request after them
must be signed with that key.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["AZURITE_KEY", "Azurite", "GcsEmulator", "MotoS3", "azurite_command"]

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (documented by Microsoft, not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} at start")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class _LocalServer:
    """A server process on `port` of 127.0.0.1, its output going to `log`."""

    def __init__(
        self, port: int, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self._log = open(log, "wb")  # closed in stop()
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        _wait_for_port(port, self.process, Path(argv[0]).name)

    def stop(self) -> None:
        _stop(self.process)
        self._log.close()


class MotoS3(_LocalServer):
    """`moto_server` as a subprocess, with one IAM user whose key signs every request."""

    def __init__(self, log: Path) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        exe = Path(sys.executable).with_name("moto_server")
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        super().__init__(port, [str(exe), "-H", "127.0.0.1", "-p", str(port)], log, env)
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",  # the unauthenticated setup calls
        )
        iam.create_user(UserName="headrace")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="headrace", PolicyName="all", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="headrace")["AccessKey"]
        self.key_id: str = key["AccessKeyId"]
        self.secret: str = key["SecretAccessKey"]

    def filesystem(self) -> Any:
        """A plain s3fs filesystem with the server's key (what the tests check against)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key_id,
            secret=self.secret,
            endpoint_url=self.url,
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


class GcsEmulator(_LocalServer):
    """gcp-storage-emulator's GCS JSON API as a subprocess, keeping objects in memory
    (FileNotFoundError when the emulator is not installed)."""

    def __init__(self, log: Path) -> None:
        exe = Path(sys.executable).with_name("gcp-storage-emulator")
        if not exe.exists():
            raise FileNotFoundError(f"{exe} is missing: pip install gcp-storage-emulator")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
        super().__init__(port, argv, log)


def azurite_command() -> list[str] | None:
    """How to start Azurite's blob service here, or None when it is not installed
    (`npm install --prefix <folder> azurite`; HEADRACE_TEST_AZURITE names the folder)."""
    folder = os.environ.get("HEADRACE_TEST_AZURITE")
    candidates = [Path(folder) / "node_modules/.bin/azurite-blob"] if folder else []
    found = shutil.which("azurite-blob")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.exists():
            return [str(candidate)]
    return None


class Azurite(_LocalServer):
    """Azurite's blob service as a subprocess, storing in `location`."""

    def __init__(self, command: list[str], location: Path, log: Path) -> None:
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        self.account = AZURITE_ACCOUNT
        self.key = AZURITE_KEY
        argv = [*command, "--blobHost", "127.0.0.1", "--blobPort", str(port)]
        argv += ["--location", str(location), "--silent", "--skipApiVersionCheck"]
        super().__init__(port, argv, log)
