"""A private certificate authority and a server certificate for local servers that must speak TLS (the Kafka
broker's SCRAM listener in tests and the multi-node run), written once into a directory.

Clients trust ``ca.pem`` (``ENGAGE_KAFKA_SSL_CA_FILE``); the broker reads ``server.p12`` (PKCS#12, which Java
reads without a conversion step). Not for production: there the platform's own CA issues the certificates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # PEM: what clients verify the server with
    keystore: Path  # PKCS#12: the server's key and certificate chain
    keystore_password: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ensure_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 3650) -> TlsFiles:
    """The CA and a server certificate valid for ``hosts`` (IP addresses and DNS names) in ``directory``, made on
    the first call and reused after."""
    files = TlsFiles(directory / "ca.pem", directory / "server.p12", "engage-local-keystore")
    if files.ca_file.exists() and files.keystore.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("engage local CA"))
        .issuer_name(_name("engage local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files.keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server", key, cert, [ca], serialization.BestAvailableEncryption(files.keystore_password.encode())
        )
    )
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files
