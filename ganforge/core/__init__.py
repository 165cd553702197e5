"""The core: the kinds and their base classes, parameters, the registry, the hook
specifications, errors and the strict converter. It imports nothing of ganforge above
:mod:`ganforge.io` (errors, suggest and structuring sit below even that)."""
