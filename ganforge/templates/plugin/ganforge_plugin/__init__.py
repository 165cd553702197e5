"""{{title}} components for ganforge (the ``{{name}}`` plugin).

Importing this package imports nothing heavy: ganforge imports the components through the
``ganforge_register`` hook in :mod:`{{package}}.plugin`.
"""

__version__ = "0.1.0"
