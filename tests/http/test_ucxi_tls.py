"""UCXI over HTTPS with a real daemon: mutual TLS (a client certificate the configured
CA signed is the credential; none, or one another CA signed, never gets an answer), and
TLS with the bearer token."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bzzz.client import UcxiClient
from bzzz.errors import UcxiError
from tests.support.agents import Agent, found, free_port, stop_all


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    pair = Pair(folder / f"{stem}.crt", folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(folder: Path, stem: str) -> tuple[Pair, x509.Name, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(f"{stem} CA", key, None, ca=True)
    return _write(folder, stem, cert, key), cert.subject, key


def _leaf(
    folder: Path,
    stem: str,
    ca: tuple[x509.Name, ec.EllipticCurvePrivateKey],
    server: bool = False,
) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(folder, stem, _certificate(stem, key, ca, server=server), key)


@dataclass(frozen=True)
class Pki:
    ca: Pair
    server: Pair
    client: Pair
    rogue: Pair  # signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, name, key = _ca(folder, "cluster")
    _, other_name, other_key = _ca(folder, "other")
    return Pki(
        ca,
        _leaf(folder, "server", (name, key), server=True),
        _leaf(folder, "client", (name, key)),
        _leaf(folder, "rogue", (other_name, other_key)),
    )


def _serve(root: Path, pki: Pki, mutual: bool) -> tuple[Agent, str]:
    port = free_port()
    agent = found(root)
    agent.env = {
        "BZZZ_UCXI_LISTEN": f"127.0.0.1:{port}",
        "BZZZ_UCXI_TLS_CERT": str(pki.server.cert),
        "BZZZ_UCXI_TLS_KEY": str(pki.server.key),
        **({"BZZZ_UCXI_TLS_CLIENT_CA": str(pki.ca.cert)} if mutual else {}),
    }
    agent.start()
    return agent, f"https://127.0.0.1:{port}"


@pytest.fixture
def mutual(tmp_path: Path, pki: Pki) -> Iterator[str]:
    agent, url = _serve(tmp_path, pki, mutual=True)
    try:
        yield url
    finally:
        stop_all([agent])


def test_mutual_tls_takes_a_certificate_of_the_cluster_ca_instead_of_a_token(
    mutual: str, pki: Pki
) -> None:
    client = (str(pki.client.cert), str(pki.client.key))
    with UcxiClient(mutual, cert=client, verify=str(pki.ca.cert)) as ucxi:
        assert ucxi.status()["status"]["name"] == "n0"
    rogue = (str(pki.rogue.cert), str(pki.rogue.key))
    for cert in (None, rogue):
        unknown = UcxiClient(mutual, cert=cert, verify=str(pki.ca.cert), timeout=5)
        with unknown as ucxi, pytest.raises(UcxiError) as refused:
            ucxi.status()
        assert refused.value.status == 0, cert
    plain = UcxiClient(mutual.replace("https", "http"), token="t" * 32, timeout=5)
    with plain as ucxi, pytest.raises(UcxiError) as refused:
        ucxi.status()
    assert refused.value.status == 0


def test_tls_without_client_certificates_still_asks_the_token(tmp_path: Path, pki: Pki) -> None:
    agent, url = _serve(tmp_path, pki, mutual=False)
    try:
        token = agent.home / "ucxi.token"
        with UcxiClient(url, token_file=token, verify=str(pki.ca.cert)) as ucxi:
            assert ucxi.tasks()["tasks"] == []
        anonymous = UcxiClient(url, verify=str(pki.ca.cert))
        with anonymous as ucxi, pytest.raises(UcxiError) as refused:
            ucxi.tasks()
        assert refused.value.status == 401
    finally:
        stop_all([agent])
