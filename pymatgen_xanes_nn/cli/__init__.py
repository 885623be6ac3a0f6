"""The ``xanes-nn`` command line.

Three groups of commands, one module each: :mod:`.user` (classify spectra, calibrate, run the builders),
:mod:`.data` (corpora, FEFF runs, shards, cards) and :mod:`.dev` (training, evaluation, benchmarks, studies).
Each subcommand is a thin wrapper over the library; heavy imports (TensorFlow, FEFF) happen only inside the
subcommands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The commands of each group, as ``xanes-nn --help`` lists them.
GROUPS = {
    "user commands": ("demo", "predict", "show", "calibrate", "models", "builders-file", "load-tasks"),
    "data commands": ("corpus", "derive", "analogues", "simulate", "physics-variants", "relax-corpus", "pack", "card",
                      "reference"),
    "developer commands": ("train", "evaluate", "refresh-ood", "ood-benchmark", "domain-shift", "experiment",
                           "measured", "evidence-study", "calibration-study", "feff-study", "relax-study", "report"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the ``xanes-nn`` argument parser."""
    from pymatgen_xanes_nn import __version__
    from pymatgen_xanes_nn.cli import data, dev, user

    epilog = "\n".join(f"{group}: {', '.join(names)}" for group, names in GROUPS.items())
    parser = argparse.ArgumentParser(prog="xanes-nn", description="K-edge XANES (Si, S) with neural networks",
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (user, data, dev):
        group.register(sub)
    for command in sub.choices.values():  # every command's --help shows its defaults
        command.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``xanes-nn``; returns the exit code.

    Errors the user can fix (:class:`~pymatgen_xanes_nn.errors.XANESError`: bad input, options, files, settings; and
    files that cannot be opened) print one line and return 2; anything else is a bug and keeps its traceback.
    """
    from pymatgen_xanes_nn.errors import XANESError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `xanes-nn predict ... | head -1`: the reader left; say nothing (an OSError: first)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python would otherwise complain again while flushing at exit
        return 141
    except (XANESError, OSError) as exc:
        print(f"xanes-nn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
