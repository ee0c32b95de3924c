"""The counter's sync daemon: push own events to central, pull others' into the ledger.

Runs as its own process beside the TUI (``onecard-edge sync``); the two share only the
SQLite file.  See :mod:`edge_node.sync.daemon`.
"""
