"""The IT console: ``onecard-central console`` (Textual).  ``app.py`` wires; each screen
is its own module under ``screens/``; data comes through :mod:`central.console.data`."""
