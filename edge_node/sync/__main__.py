"""``python -m edge_node.sync --config PATH``: run the sync daemon (as ``onecard-edge sync``)."""

from __future__ import annotations

import argparse
import sys

from edge_node.sync.daemon import main_from_args

if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m edge_node.sync")
    p.add_argument("--config", required=True, help="the counter's TOML config")
    sys.exit(main_from_args(p.parse_args().config))
