"""The ``ctbench`` command: argument parsing and dispatch only.

Nothing heavy is imported here (no torch, no Lightning) so that ``ctbench --help`` answers at once;
each command imports its implementation when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from ctbench import __version__
from ctbench.commands import HYDRA_COMMANDS, add_argparse_commands

EPILOG = """\
Hydra commands take overrides, e.g.
  ctbench train model=deeplabv3p loss=combo
  ctbench train -m model=unet,pspnet loss=dice,focal dims=2
  ctbench train --cfg job            (print the composed config)
  ctbench eval ckpt_path=outputs/.../checkpoints/best.ckpt
Run `ctbench COMMAND --help` for one command, `ctbench list` for the names a config may use.
"""


def _load(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _run_guarded(func: Callable[[], int | None]) -> int:
    """Run ``func``; a :class:`CTBenchError` becomes one line on stderr and its exit code, and so does running
    out of memory (an image or file larger than this machine can hold). Never raises from the handler itself:
    an empty message gives a line naming the exception type."""
    from ctbench.errors import CTBenchError, describe

    try:
        return int(func() or 0)
    except CTBenchError as err:
        print(f"ctbench: error: {describe(err)}", file=sys.stderr)
        return err.exit_code
    except MemoryError as err:
        print(f"ctbench: error: out of memory ({describe(err)}): the input or a setting needs more memory than "
              "this machine has; use a smaller input or a lower dataset.max_voxels", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ctbench: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "__complete":  # called by the shell completion function
        from ctbench.completion import run_complete

        return run_complete(argv[1] if len(argv) > 1 else "ctbench ")
    if argv and argv[0] in HYDRA_COMMANDS:
        name, rest = argv[0], argv[1:]
        from ctbench.hydra_app import run_hydra_command

        return _run_guarded(lambda: run_hydra_command(name, HYDRA_COMMANDS[name][0], rest))

    parser = argparse.ArgumentParser(
        prog="ctbench",
        description="Train, evaluate and compare CT segmentation architectures x losses.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ctbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, text) in HYDRA_COMMANDS.items():
        sub.add_parser(name, help=f"{text} [Hydra overrides]", add_help=False)
    targets = add_argparse_commands(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return _run_guarded(lambda: _load(targets[args.command])(args))


if __name__ == "__main__":
    sys.exit(main())
