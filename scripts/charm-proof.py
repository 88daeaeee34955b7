#!/usr/bin/env python3
"""Runs charm-tools' `charm-proof` on a charm whose hooks are a compiled binary.

charm-tools 3.0.9 (`charmtools.charms.Charm.check_hook`) opens every hook in text mode to grep it for the EC2
metadata URL, so on a binary hook it dies with UnicodeDecodeError before it reports anything. This runs the very
same linter with one change: text-mode reads made by `charmtools.charms` decode invalid bytes as U+FFFD instead
of raising. Every check still runs (the URL grep included) and the exit status is charm-proof's own: 0 with
infos only, 100 with warnings, 200 with an error.

Usage: <venv>/bin/python scripts/charm-proof.py <unpacked charm dir>   (the venv is `make setup`'s .venv-tools/)
"""

import builtins
import sys

import charmtools.charms
from charmtools.proof import main


def _tolerant_open(file, mode="r", *args, **kwargs):
    if "b" not in mode and len(args) < 3 and "errors" not in kwargs:
        kwargs["errors"] = "replace"
    return builtins.open(file, mode, *args, **kwargs)


# A module-level name shadows the builtin for code in that module only.
charmtools.charms.open = _tolerant_open

if __name__ == "__main__":
    sys.argv[0] = "charm-proof"
    sys.exit(main())
