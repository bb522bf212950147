"""The one root of every error damo raises on purpose.

A ``DamoError`` is a failure the user can act on: bad input, a server that went away, a model that
does not verify. Its message is one line that names what is wrong. The CLI's ``main`` catches
``DamoError`` once for every verb and prints that line (the traceback only with ``--debug``); any
other exception is a bug and keeps its traceback.

The subclasses stay where their subject lives (``ConfigError`` in the config, ``StorageError`` in
storage, ...) and also derive from the built-in they always were (``ValueError``, ``RuntimeError``),
so ``except ValueError`` in callers keeps working.
"""

from __future__ import annotations


class DamoError(Exception):
    """Root of damo's own errors: a one-line, user-facing message; see the module docstring."""
