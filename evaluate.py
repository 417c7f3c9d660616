"""Evaluate runs: ``python evaluate.py RUN [RUN ...] [--data DIR] [--split test] [--out DIR]``.

The same as ``stampnet evaluate``; see ``stampnet/evaluation/command.py``.
"""

import sys

from stampnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
