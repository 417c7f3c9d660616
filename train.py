"""Train a stampnet model: ``python train.py --model NAME [flags]`` (see ``--help``).

The same as ``stampnet train``; the code lives in ``stampnet.training``.
"""

import sys

from stampnet.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
