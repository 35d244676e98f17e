"""The `fedland` command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from fedland.commands import codec, data, deploy, federated, model, predict, training


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for reports that record the command that made them
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, OSError, ImportError) as error:
        # Config, bit-setting, annotation and checkpoint errors all say what and where; a
        # missing optional extra says how to install it.
        print(f"fedland {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM / SIGHUP during a run
        signum = getattr(interrupt, "signum", 2)
        print(f"fedland {args.command}: interrupted ({signal.Signals(signum).name})",
              file=sys.stderr)  # fmt: skip
        return 128 + signum


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedland",
        description="Federated and on-device training of quantized DU-Nets for landmarks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    model.add_parsers(commands)
    predict.add_parsers(commands)
    data.add_parsers(commands)
    training.add_parsers(commands)
    federated.add_parsers(commands)
    deploy.add_parsers(commands)
    codec.add_parsers(commands)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
