"""The Python API: what every ``ganforge`` command does, as functions that return result
objects and raise ganforge's errors (never exit). The CLI parses, calls these and prints.

``ganforge.train``, ``ganforge.evaluate``, ``ganforge.sample``, ``ganforge.export`` and
``ganforge.ablate`` are re-exported at the package's top level; see docs/api.md.
"""
