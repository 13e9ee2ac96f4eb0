"""The ``ramie-examples`` console script: ``list`` the examples, ``run`` one with its flags."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

#: The names of the examples, each a module ``ramie.examples.<name>`` with a ``main``.
EXAMPLES = (
    "mnist",
    "polyak",
    "lora",
    "gnn",
    "resnet",
    "lm",
    "vae",
    "gan",
    "seq2seq",
    "segmentation",
)
EXTRAS = {"gnn": "gnn"}  # examples that need an optional extra of ramie-examples
MISSING_EXTRA = (
    "ramie-examples: the {name} example needs {module}, which is not installed; "
    "pip install 'ramie-examples[{extra}]'"
)


def describe(name: str) -> str:
    """The first line of an example's docstring, read without importing it.

    >>> describe("mnist")
    "The main job: the seed README's CNN trained on handwritten digits with ramie and optax."
    """
    spec = importlib.util.find_spec(f"ramie.examples.{name}")
    with open(spec.origin, encoding="utf-8") as file:
        source = file.read()
    return source.split('"""', 2)[1].strip().splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    """``ramie-examples list`` or ``ramie-examples run NAME [flags...]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="ramie-examples", description="List or run the ramie examples."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the examples")
    run = commands.add_parser("run", help="run an example; flags after NAME go to it")
    run.add_argument("name", choices=EXAMPLES)
    run.add_argument("flags", nargs=argparse.REMAINDER, help="the example's flags (see --help)")
    args = parser.parse_args(argv)
    if args.command == "list":
        width = max(map(len, EXAMPLES))
        for name in EXAMPLES:
            print(f"{name:<{width}}  {describe(name)}")
        return 0
    try:
        module = importlib.import_module(f"ramie.examples.{args.name}")
    except ModuleNotFoundError as error:
        if args.name not in EXTRAS or (error.name or "").startswith("ramie"):
            raise
        print(
            MISSING_EXTRA.format(name=args.name, module=error.name, extra=EXTRAS[args.name]),
            file=sys.stderr,
        )
        return 1
    module.main(args.flags)
    return 0
