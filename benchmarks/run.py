"""The same benchmark as ``jconv bench``: ``python benchmarks/run.py [--quick] [--rounds N]``."""

import argparse
import sys

from jconv._src import bench

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test)")
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    sys.exit(bench.main(quick=args.quick, rounds=args.rounds))
