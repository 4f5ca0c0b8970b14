"""The library version, at the bottom of the import graph (io, tables and the CLI write it
into files; importing it from the package ``__init__`` would point those imports up)."""

__version__ = "0.1.0"
