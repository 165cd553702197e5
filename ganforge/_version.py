"""The installed version of ganforge."""

__version__ = "0.1.0"
