"""Shell completion for ``ctbench``: commands, config groups and their options, top-level keys.

``ctbench completion bash`` (or ``zsh``) prints a script to ``eval`` from the shell's rc file; the shell
function asks ``ctbench __complete LINE`` for candidates, which reads ``configs/`` only (no torch, no
Hydra), so a TAB answers at once. Hydra's own ``-sc`` completion does not work for a program whose first
word is a sub-command, hence this.
"""

from __future__ import annotations

import argparse

from ctbench.commands import HYDRA_COMMANDS, command_names
from ctbench.config import CONFIG_DIR, config_groups, group_choices

BASH = r"""# ctbench shell completion: eval "$(ctbench completion bash)"
_ctbench_complete() {
    local IFS=$'\n'
    COMPREPLY=( $(ctbench __complete "${COMP_LINE:0:$COMP_POINT}" 2>/dev/null) )
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
    return 0
}
complete -o default -F _ctbench_complete ctbench
"""

ZSH = "# ctbench shell completion: eval \"$(ctbench completion zsh)\"\nautoload -U +X bashcompinit && bashcompinit\n" \
      + BASH.split("\n", 1)[1]

#: shells the ``completion`` command writes a script for
SCRIPTS = {"bash": BASH, "zsh": ZSH}
#: word-break characters of bash's default ``COMP_WORDBREAKS`` that can occur in an override
_WORD_BREAKS = "=:"


def _top_level_keys(command: str) -> list[str]:
    """The plain keys of ``configs/COMMAND.yaml`` and ``configs/train.yaml`` (``dims=``, ``seed=``, ...)."""
    from ctbench.safe_yaml import load_yaml

    keys: set[str] = set()
    for name in {command, "train"}:
        path = CONFIG_DIR / f"{name}.yaml"
        if path.is_file():
            keys |= {k for k in load_yaml(path) or {} if k != "defaults"}
    return sorted(keys)


def candidates(line: str) -> list[str]:
    """What may follow the last word of ``line`` (the command line up to the cursor), whole words."""
    words = line.split()
    current = "" if line.endswith((" ", "\t")) or not words else words[-1]
    before = words[1:-1] if current else words[1:]
    if not before:
        return [c for c in command_names() if c.startswith(current)]
    command = before[0]
    if command == "completion":
        return [s for s in SCRIPTS if s.startswith(current)]
    if command not in HYDRA_COMMANDS:
        return []
    if "=" in current:
        key, value = current.split("=", 1)
        group = key.lstrip("+~")
        if (CONFIG_DIR / group).is_dir():
            return [f"{key}={c}" for c in group_choices(group) if c.startswith(value)]
        return []
    groups = [g for g in config_groups() if not g.startswith("hydra") or g == "hydra/launcher"]
    options = [f"{g}=" for g in groups] + [f"{k}=" for k in _top_level_keys(command) if k not in groups]
    options += ["-m", "--cfg", "--help"]
    return sorted(o for o in set(options) if o.startswith(current))


def for_shell(line: str) -> list[str]:
    """:func:`candidates` cut where bash splits words (at ``=`` and ``:``), as ``COMPREPLY`` needs them."""
    words = line.split()
    current = "" if line.endswith((" ", "\t")) or not words else words[-1]
    cut = max(current.rfind(c) for c in _WORD_BREAKS) + 1
    return [c[cut:] for c in candidates(line)]


def run_cli(args: argparse.Namespace) -> int:
    """``ctbench completion SHELL``: print the script to ``eval``."""
    print(SCRIPTS[args.shell], end="")
    return 0


def run_complete(line: str) -> int:
    """``ctbench __complete LINE`` (called by the shell function): one candidate per line."""
    for word in for_shell(line):
        print(word)
    return 0


