"""A small certificate authority in a directory: one CA, kept, and one server certificate it signs
for given DNS names and IP addresses, made anew when it nears its end or its names change.

Used by the sandbox's Kubernetes emulator (its API's CA) and by every deployment (the CA the
pipeline verifies Triton's load balancer with). ECDSA P-256 keys: made in milliseconds, understood
by Go, OpenSSL, nginx, AWS ACM and urllib3 alike. Private keys are mode 0600 in a 0700 directory
and never leave it; callers get paths and public certificates only."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from radstream.private_file import write_private

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
CA_DAYS, SERVER_DAYS = 3650, 365
# A server certificate this close to its end is made anew, before a client could see it expire.
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_CERT

    @property
    def server_cert(self) -> Path:
        return self.directory / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.directory / SERVER_KEY


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _alt_names(dns_names: tuple[str, ...], ips: tuple[str, ...]) -> list:
    from cryptography import x509

    return [*(x509.DNSName(n) for n in dns_names), *(x509.IPAddress(ipaddress.ip_address(i)) for i in ips)]


def _certificate(common_name: str, public_key, issuer, signing_key, days: int, alt_names: list | None):
    """Signed by `signing_key` for the owner `issuer` (an x509.Name; None: a self-signed CA).
    `alt_names` None makes a CA, a list a server certificate for those names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = alt_names is None
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
    if alt_names is None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = (builder
                   .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def _usable_server_cert(directory: Path, ca_cert, alt_names: list) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate((directory / SERVER_CERT).read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (FileNotFoundError, ValueError, x509.ExtensionNotFound):
        return False
    if not (directory / SERVER_KEY).exists() or cert.issuer != ca_cert.subject or set(names) != set(alt_names):
        return False
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > RENEW_BEFORE


def ensure(directory: Path, ca_name: str, server_name: str, *, dns_names: tuple[str, ...] = (),
           ips: tuple[str, ...] = ()) -> Issued:
    """Make the CA (once) and a current server certificate for `dns_names` and `ips` in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)  # mkdir's mode does not apply to a directory that was there
    try:
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except (FileNotFoundError, ValueError):
        ca_key = _new_key()
        ca_cert = _certificate(ca_name, ca_key.public_key(), None, ca_key, CA_DAYS, None)
        write_private(directory / CA_KEY, _pem_key(ca_key))
        (directory / CA_CERT).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (directory / SERVER_CERT).unlink(missing_ok=True)  # signed by a CA that is gone
    alt_names = _alt_names(dns_names, ips)
    if not _usable_server_cert(directory, ca_cert, alt_names):
        key = _new_key()
        cert = _certificate(server_name, key.public_key(), ca_cert.subject, ca_key, SERVER_DAYS, alt_names)
        write_private(directory / SERVER_KEY, _pem_key(key))
        (directory / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(directory)
