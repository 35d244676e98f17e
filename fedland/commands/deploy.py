"""`fedland deploy ...`: certificates, node keys, the `flwr` connection, and thin wrappers
that start Flower's SuperLink and SuperNodes (Deployment Engine) with this project's
settings."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import NoReturn


def add_parsers(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("deploy", help="run the federation on real machines")
    actions = group.add_subparsers(dest="action", required=True)

    certs = actions.add_parser("certs", help="a CA and the SuperLink's TLS certificate")
    certs.add_argument("--out", type=Path, required=True, help="folder to write")
    certs.add_argument(
        "--host", action="append", default=[],
        help="a name or IP address clients use to reach the SuperLink (repeatable); "
        "localhost and 127.0.0.1 are always included",
    )  # fmt: skip
    certs.add_argument("--days", type=int, default=365, help="validity (365)")
    certs.set_defaults(handler=certs_command)

    key = actions.add_parser("node-key", help="an ECDSA key pair for SuperNode authentication")
    key.add_argument("--out", type=Path, required=True, help="folder to write")
    key.add_argument("--name", required=True, help="file stem: NAME.key and NAME.pub")
    key.set_defaults(handler=node_key_command)

    connection = actions.add_parser(
        "connection", help="make a SuperLink the default connection of the flwr command"
    )
    connection.add_argument("--name", default="fedland", help="connection name (fedland)")
    connection.add_argument("--address", required=True, help="SuperLink host:port")
    connection.add_argument("--ca", type=Path, help="CA certificate (omit: insecure)")
    connection.set_defaults(handler=connection_command)

    link = actions.add_parser("superlink", help="start flower-superlink with TLS and node auth")
    link.add_argument("--certs", type=Path, help="folder written by `deploy certs`")
    link.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    link.add_argument("--port", type=int, default=9092, help="HTTPS port (9092)")
    link.add_argument("--database", type=Path, help="state file (default: in memory)")
    link.add_argument(
        "--no-auth", action="store_true", help="accept unregistered SuperNodes (testing only)"
    )
    link.set_defaults(handler=superlink_command)

    node = actions.add_parser("supernode", help="start flower-supernode with a node config")
    node.add_argument("--superlink", required=True, help="SuperLink host:port")
    node.add_argument("--ca", type=Path, help="CA certificate (omit: insecure)")
    node.add_argument("--key", type=Path, help="private key from `deploy node-key`")
    node.add_argument("--port", type=int, default=9094, help="local port, one per node (9094)")
    node.add_argument("--partition-id", type=int, required=True)
    node.add_argument("--num-partitions", type=int, required=True)
    node.add_argument("--data-path", help="this node's own dataset (default: its partition)")
    node.add_argument("--dataset", help="reader of --data-path (300w, wflw, mpii, lsp, coco)")
    node.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    node.add_argument("--batch-size", type=int)
    node.add_argument("--uplink-bits", type=int, help="needs codec.node_uplink_bits on the server")
    node.add_argument("--memory-efficient", choices=["true", "false"])
    node.set_defaults(handler=supernode_command)

    app = actions.add_parser(
        "app", help="write the Flower App project that `flwr run DIR` ships to the SuperLink"
    )
    app.add_argument("--out", type=Path, required=True, help="folder to write (DIR)")
    app.set_defaults(handler=app_command)

    traffic = actions.add_parser(
        "traffic", help="add the SuperLink's network traffic of a run to its summary.json"
    )
    traffic.add_argument("--run", type=Path, required=True, help="the run folder (its out)")
    traffic.add_argument("--connection", default="fedland", help="flwr connection (fedland)")
    traffic.set_defaults(handler=traffic_command)


def certs_command(args: argparse.Namespace) -> int:
    from fedland.federation.deployment import write_certificates

    paths = write_certificates(args.out, args.host, args.days)
    print(f"wrote {paths['ca']} (give it to every SuperNode and flwr user), "
          f"{paths['certificate']} and {paths['key']} (for the SuperLink); "
          f"keep {paths['ca_key']} offline")  # fmt: skip
    return 0


def node_key_command(args: argparse.Namespace) -> int:
    from fedland.federation.deployment import write_node_key

    private, public = write_node_key(args.out, args.name)
    print(f"wrote {private} (stays on the node) and {public} "
          f"(register it: flwr supernode register {public} <connection>)")  # fmt: skip
    return 0


def connection_command(args: argparse.Namespace) -> int:
    from flwr.supercore.utils import get_flwr_home

    from fedland.federation.deployment import write_connection

    path = write_connection(Path(get_flwr_home()), args.name, args.address, args.ca)
    print(f"wrote {path}: `flwr ... {args.name}` now reaches {args.address}")
    return 0


def superlink_command(args: argparse.Namespace) -> NoReturn:
    from fedland.federation.deployment import superlink_command as build

    _exec(build(args.certs, args.host, args.port, not args.no_auth, args.database))


def supernode_command(args: argparse.Namespace) -> NoReturn:
    from fedland.federation.deployment import supernode_command as build

    node_config = {
        "partition-id": args.partition_id,
        "num-partitions": args.num_partitions,
        "data-path": args.data_path,
        "dataset": args.dataset,
        "device": args.device,
        "batch-size": args.batch_size,
        "uplink-bits": args.uplink_bits,
        "memory-efficient": None
        if args.memory_efficient is None
        else args.memory_efficient == "true",
    }
    _exec(build(args.superlink, node_config, args.ca, args.key, args.port))


def _exec(command: list[str]) -> NoReturn:
    """Become the Flower process (same pid, so whoever started us can stop it)."""
    program = shutil.which(command[0])
    if program is None:
        raise FileNotFoundError(f"{command[0]} not found: is flwr installed here?")
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    os.execv(program, command)


def app_command(args: argparse.Namespace) -> int:
    """The app project is one pyproject.toml (the apps are the installed package's), so a
    machine with only the wheel can `flwr run` a federation."""
    from fedland.simulations.harness import APP_DIR

    source = (APP_DIR / "pyproject.toml").read_text()
    target = args.out / "pyproject.toml"
    if target.exists() and target.read_text() != source:
        raise FileExistsError(f"{target}: exists and is another project; choose an empty --out")
    args.out.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    print(f"wrote {target}: `flwr run {args.out} <connection> --run-config ...` runs fedland")
    return 0


def traffic_command(args: argparse.Namespace) -> int:
    """`flwr list` reports the bytes the SuperLink exchanged for a run (payload plus message
    framing, without TLS); they go into the summary beside the payload counters."""
    import json
    import subprocess

    summary_path = args.run / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: no such file (has the run finished?)")
    summary = json.loads(summary_path.read_text())
    if summary.get("run_id") is None:
        raise ValueError(f"{summary_path}: no run_id (not a run of the Flower apps)")
    command = ["flwr", "list", args.connection, "--run-id", str(summary["run_id"])]
    result = subprocess.run(
        [*command, "--format", "json"], capture_output=True, text=True, timeout=120
    )
    try:
        (run,) = json.loads(result.stdout)["runs"]
        traffic = run["network-traffic"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"`{' '.join(command)}` did not list the run: {result.stdout}") from error
    summary["network_traffic"] = {
        "inbound_bytes": int(traffic["inbound-bytes"]),
        "outbound_bytes": int(traffic["outbound-bytes"]),
        "total_bytes": int(traffic["total-bytes"]),
    }
    summary_path.write_text(json.dumps(summary, indent=2))
    payload = summary["uplink_bytes"] + summary["downlink_bytes"]
    total = summary["network_traffic"]["total_bytes"]
    ratio = total / payload if payload else float("nan")
    print(
        f"run {summary['run_id']}: SuperLink traffic {total:,} B against {payload:,} B of "
        f"payload ({ratio:.3f}x); in {summary_path}"
    )
    return 0
