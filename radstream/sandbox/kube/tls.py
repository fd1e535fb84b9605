"""The certificate authority the emulator serves TLS with: kubectl, like every client-go program,
never sends a bearer token over plain HTTP.

One CA per state dir (`<state_dir>/sandbox-ca/`), kept across restarts so a kubeconfig that embeds
it stays valid; it signs the server certificate for 127.0.0.1 and localhost. ECDSA P-256 keys:
see radstream.certificates."""

from __future__ import annotations

import ssl
from pathlib import Path

from radstream.certificates import SERVER_CERT, SERVER_KEY, ensure


def ensure_ca(directory: Path) -> Path:
    """Make the CA (once) and a current server certificate in `directory`; returns the CA
    certificate's path, what clients verify the emulator with."""
    return ensure(directory, "radstream-sandbox-ca", "radstream-sandbox-kubernetes", dns_names=("localhost",),
                  ips=("127.0.0.1",)).ca_cert


def server_context(directory: Path) -> ssl.SSLContext:
    """The TLS context the emulator's HTTP server wraps its connections in."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(Path(directory) / SERVER_CERT, Path(directory) / SERVER_KEY)
    return context
