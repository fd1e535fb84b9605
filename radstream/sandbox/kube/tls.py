"""The certificate authority the emulator serves TLS with: kubectl, like every client-go program,
never sends a bearer token over plain HTTP.

One CA per state dir (`<state_dir>/sandbox-ca/`), kept across restarts so a kubeconfig that embeds
it stays valid; it signs the server certificate for 127.0.0.1 and localhost. ECDSA P-256 keys:
made in milliseconds, understood by Go, OpenSSL and urllib3 alike. Private keys are mode 0600 and
never leave the directory."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from radstream.private_file import write_private

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
CA_DAYS, SERVER_DAYS = 3650, 365
# A server certificate this close to its end is made anew at start, before a client could see it expire.
RENEW_BEFORE = datetime.timedelta(days=30)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(common_name: str, public_key, issuer, signing_key, days: int, *, ca: bool):
    """A certificate signed by `signing_key`, whose owner is `issuer` (an x509.Name; None: self-signed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer or subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate a little clock skew
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = (builder
                   .add_extension(x509.SubjectAlternativeName([
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def _usable_server_cert(directory: Path, ca_cert) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate((directory / SERVER_CERT).read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    if not (directory / SERVER_KEY).exists() or cert.issuer != ca_cert.subject:
        return False
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > RENEW_BEFORE


def ensure_ca(directory: Path) -> Path:
    """Make the CA (once) and a current server certificate in `directory`; returns the CA
    certificate's path, what clients verify the emulator with."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except (FileNotFoundError, ValueError):
        ca_key = _new_key()
        ca_cert = _certificate("radstream-sandbox-ca", ca_key.public_key(), None, ca_key, CA_DAYS, ca=True)
        write_private(directory / CA_KEY, _pem_key(ca_key))
        (directory / CA_CERT).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (directory / SERVER_CERT).unlink(missing_ok=True)  # signed by a CA that is gone
    if not _usable_server_cert(directory, ca_cert):
        key = _new_key()
        cert = _certificate("radstream-sandbox-kubernetes", key.public_key(), ca_cert.subject, ca_key,
                            SERVER_DAYS, ca=False)
        write_private(directory / SERVER_KEY, _pem_key(key))
        (directory / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


def server_context(directory: Path) -> ssl.SSLContext:
    """The TLS context the emulator's HTTP server wraps its connections in."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(Path(directory) / SERVER_CERT, Path(directory) / SERVER_KEY)
    return context
