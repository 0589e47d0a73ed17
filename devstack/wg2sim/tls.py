"""A self-signed certificate for `--tls`, so clients exercise their real TLS path on loopback."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsFiles:
    cert_pem: bytes
    key_pem: bytes
    cert_file: Path  # what clients trust as the root (the "CA file")


def write_self_signed(
    directory: Path, *, file_name: str = "wg2sim-ca.pem", common_name: str = "wg2sim localhost"
) -> TlsFiles:
    """A P-256 certificate for localhost and 127.0.0.1, valid for a day; the key stays in memory
    (write `key_pem` yourself where a server needs it as a file, e.g. the local PBX)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_file = directory / file_name
    cert_file.write_bytes(cert_pem)
    return TlsFiles(cert_pem=cert_pem, key_pem=key_pem, cert_file=cert_file)
