"""Certificates, node keys and the commands `fedland deploy` starts, without processes."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from fedland.cli import main
from fedland.federation.deployment import (
    format_node_config,
    superlink_command,
    supernode_command,
    write_certificates,
    write_node_key,
)


def test_certificate_names_the_hosts_and_loopback_and_is_signed_by_the_ca(tmp_path):
    paths = write_certificates(tmp_path, ["server.example.org", "10.0.0.5"])
    ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
    server = x509.load_pem_x509_certificate(paths["certificate"].read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"server.example.org", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    addresses = set(names.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("127.0.0.1")} <= addresses
    server.verify_directly_issued_by(ca)
    for key in ("ca_key", "key"):
        assert stat.S_IMODE(paths[key].stat().st_mode) == 0o600


def test_node_keys_are_openssh_ecdsa_and_private_ones_stay_private(tmp_path, capsys):
    assert main(["deploy", "node-key", "--out", str(tmp_path), "--name", "node1"]) == 0
    private, public = tmp_path / "node1.key", tmp_path / "node1.pub"
    assert "PRIVATE KEY" not in capsys.readouterr().out
    key = load_ssh_private_key(private.read_bytes(), password=None)
    assert load_ssh_public_key(public.read_bytes()).public_numbers() == (
        key.public_key().public_numbers()
    )
    assert public.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    second = write_node_key(tmp_path, "node2")
    assert second == (tmp_path / "node2.key", tmp_path / "node2.pub")
    other = load_ssh_private_key(second[0].read_bytes(), password=None)
    assert load_ssh_public_key(second[1].read_bytes()).public_numbers() == (
        other.public_key().public_numbers()
    )
    assert other.public_key().public_numbers() != key.public_key().public_numbers()


def test_superlink_command_uses_tls_and_authentication(tmp_path):
    write_certificates(tmp_path)
    command = superlink_command(tmp_path, "127.0.0.1", 9555)
    folder = tmp_path.resolve()
    assert command == [
        "flower-superlink", "--host", "127.0.0.1", "--port", "9555",
        "--ssl-ca-certfile", str(folder / "ca.crt"),
        "--ssl-certfile", str(folder / "server.pem"),
        "--ssl-keyfile", str(folder / "server.key"),
        "--enable-supernode-auth", "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="needs TLS"):
        superlink_command(None)
    with pytest.raises(FileNotFoundError, match="server.pem"):
        superlink_command(tmp_path / "empty")


def test_supernode_command_carries_the_node_config(tmp_path):
    config = {"partition-id": 1, "num-partitions": 4, "data-path": "/data/site b", "device": None}
    write_certificates(tmp_path)
    command = supernode_command("10.0.0.5:9092", config, tmp_path / "ca.crt", port=9200)
    node_config = 'partition-id=1 num-partitions=4 data-path="/data/site b"'
    assert format_node_config(config) == node_config
    assert command == [
        "flower-supernode", "--superlink", "10.0.0.5:9092", "--port", "9200",
        "--root-certificates", str((tmp_path / "ca.crt").resolve()),
        "--node-config", node_config,
    ]  # fmt: skip
    assert format_node_config({"memory-efficient": True}) == "memory-efficient=true"
    key, _ = write_node_key(tmp_path, "node1")
    authenticated = supernode_command("10.0.0.5:9092", config, tmp_path / "ca.crt", key)
    assert authenticated[3:5] == ["--port", "9094"]
    assert authenticated[7:10] == [
        "--auth-supernode-private-key",
        str(key.resolve()),
        "--node-config",
    ]
    insecure = supernode_command("10.0.0.5:9092", config, None)
    assert insecure[5:7] == ["--insecure", "--node-config"]


def test_supernode_refuses_a_missing_or_foreign_key_or_ca_naming_the_file(tmp_path, capsys):
    write_certificates(tmp_path)
    key, public = write_node_key(tmp_path, "node1")
    ca = tmp_path / "ca.crt"
    config = {"partition-id": 0, "num-partitions": 2}
    cases = {
        "cannot read the node's private key": (ca, tmp_path / "missing.key"),
        "not an unencrypted OpenSSH ECDSA private key": (ca, public),
        "cannot read the CA certificate": (tmp_path / "missing.crt", key),
        "not a PEM certificate": (key, key),
    }
    for reason, (given_ca, given_key) in cases.items():
        with pytest.raises((ValueError, FileNotFoundError), match=reason):
            supernode_command("127.0.0.1:9092", config, given_ca, given_key)
    args = ["deploy", "supernode", "--superlink", "127.0.0.1:9092", "--ca", str(ca),
            "--key", str(tmp_path / "missing.key"), "--partition-id", "0",
            "--num-partitions", "2"]  # fmt: skip
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "missing.key: cannot read the node's private key" in error
    assert "Traceback" not in error
