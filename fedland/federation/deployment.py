"""Material for Flower's Deployment Engine: TLS certificates and SuperNode keys.

The SuperLink serves the Fleet, Control and runtime APIs over HTTPS on one port. Its
certificate must name every address clients use (and 127.0.0.1: the SuperLink's own
internal client connects there). SuperNode authentication takes ECDSA keys in OpenSSH
format: the private key for `flower-supernode --auth-supernode-private-key`, the public one
for `flwr supernode register`. Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CURVE = ec.SECP384R1
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def write_certificates(out: Path, hosts: Sequence[str] = (), days: int = 365) -> dict[str, Path]:
    """A CA and a server certificate for `hosts` (names or IP addresses) plus loopback."""
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(CURVE())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedland federation CA")])
    ca_identifier = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign_certificates=True), critical=True)
        .add_extension(ca_identifier, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(CURVE())
    names = list(dict.fromkeys([*hosts, *LOOPBACK]))
    server = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
            ca_name,
            key.public_key(),
            start,
            end,
        )
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_identifier), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {
        "ca": out / "ca.crt",
        "ca_key": out / "ca.key",
        "certificate": out / "server.pem",
        "key": out / "server.key",
    }
    _write(paths["ca"], ca.public_bytes(pem))
    _write(paths["ca_key"], _private_pem(ca_key), private=True)
    _write(paths["certificate"], server.public_bytes(pem))
    _write(paths["key"], _private_pem(key), private=True)
    return paths


def write_node_key(out: Path, name: str) -> tuple[Path, Path]:
    """An ECDSA key pair for SuperNode authentication: (private key, public key)."""
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(CURVE())
    private, public = out / f"{name}.key", out / f"{name}.pub"
    _write(
        private,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    _write(
        public,
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n",
    )
    return private, public


def write_connection(home: Path, name: str, address: str, ca: Path | None) -> Path:
    """The `flwr` CLI's connection to a SuperLink, as the default in `FLWR_HOME/config.toml`
    (TLS with the federation's CA, or insecure without one)."""
    home.mkdir(parents=True, exist_ok=True)
    security = f'root-certificates = "{ca.resolve()}"' if ca else "insecure = true"
    path = home / "config.toml"
    path.write_text(
        f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\naddress = "{address}"\n'
        f"{security}\n"
    )
    return path


def _builder(subject, issuer, public_key, start, end) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _usage(sign_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def superlink_command(
    certificates: Path | None,
    host: str = "0.0.0.0",
    port: int = 9092,
    authenticate: bool = True,
    database: Path | None = None,
) -> list[str]:
    """`flower-superlink` with TLS from `certificates` (a `write_certificates` folder) and
    SuperNode authentication; without certificates, insecure (authentication needs TLS)."""
    command = ["flower-superlink", "--host", host, "--port", str(port)]
    if certificates is None:
        if authenticate:
            raise ValueError("SuperNode authentication needs TLS: give the certificates folder")
        command.append("--insecure")
    else:
        files = {"ca": "ca.crt", "certificate": "server.pem", "key": "server.key"}
        missing = [name for name in files.values() if not (certificates / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{certificates}: missing {', '.join(missing)}")
        command += [
            "--ssl-ca-certfile", str((certificates / "ca.crt").resolve()),
            "--ssl-certfile", str((certificates / "server.pem").resolve()),
            "--ssl-keyfile", str((certificates / "server.key").resolve()),
        ]  # fmt: skip
        if authenticate:
            command.append("--enable-supernode-auth")
    if database is not None:
        command += ["--database", str(database)]
    return [*command, "--disable-runtime-dependency-installation"]


def supernode_command(
    superlink: str,
    node_config: dict[str, object],
    ca: Path | None,
    key: Path | None = None,
    port: int = 9094,
) -> list[str]:
    """`flower-supernode` connecting to `superlink` (host:port) with its node config; each
    SuperNode on one host needs its own local `port`."""
    command = ["flower-supernode", "--superlink", superlink, "--port", str(port)]
    if ca is not None:
        _check_certificate(ca)
    command += ["--root-certificates", str(ca.resolve())] if ca else ["--insecure"]
    if key is not None:
        _check_node_key(key)
        command += ["--auth-supernode-private-key", str(key.resolve())]
    return [*command, "--node-config", format_node_config(node_config)]


def _check_certificate(path: Path) -> None:
    """Flower fails on a missing or foreign CA file with a traceback; say which file."""
    try:
        x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as error:
        raise FileNotFoundError(
            f"{path}: cannot read the CA certificate ({error.strerror})"
        ) from None
    except ValueError:
        raise ValueError(f"{path}: not a PEM certificate (the CA written by `fedland deploy "
                         f"certs` is ca.crt)") from None  # fmt: skip


def _check_node_key(path: Path) -> None:
    """The private key must be an OpenSSH ECDSA key, the form Flower reads."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read the node's private key ({error.strerror}); "
                                f"write one with `fedland deploy node-key`") from None  # fmt: skip
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an unencrypted OpenSSH ECDSA private key (write one "
                         f"with `fedland deploy node-key`)")  # fmt: skip


def format_node_config(values: dict[str, object]) -> str:
    """Flower's `key=value` node config; strings quoted, None left out."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, int | float):
            text = str(value)
        else:
            text = '"' + str(value).replace('"', "") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)
