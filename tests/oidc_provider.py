"""A real OpenID Connect provider on 127.0.0.1 for the sign-in tests: `oidc-provider-mock` (PyPI, built on Authlib).

It runs as its own process (`python -m oidc_provider_mock`), so the browser and the dashboard talk to it over HTTP
exactly as they would to Keycloak or Google. Any client id and secret are accepted. Its authorize page is a form
with one field, the subject: whatever is typed there signs in, with the claim `email` equal to the subject (no
`email_verified` claim).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from daam_store.store.testing import free_port

START_TIMEOUT = 60


@dataclass
class OidcProvider:
    url: str
    process: subprocess.Popen
    log_file: Path

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_provider(log_file: Path) -> OidcProvider:
    """Start the provider on a free port of 127.0.0.1 and wait until it serves its discovery document."""
    port = free_port()
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_file, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    provider = OidcProvider(f"http://127.0.0.1:{port}", process, log_file)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the OIDC provider exited with {process.returncode}:\n{provider.log_tail()}")
        try:
            with urllib.request.urlopen(provider.metadata_url, timeout=2) as response:
                metadata = json.load(response)
            if metadata.get("authorization_endpoint", "").startswith(provider.url):
                return provider
        except OSError:
            pass
        time.sleep(0.3)
    provider.stop()
    raise RuntimeError(f"the OIDC provider did not answer within {START_TIMEOUT} s:\n{provider.log_tail()}")
