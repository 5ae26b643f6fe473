"""hubcap core: plain Python modules, nothing here imports azure.functions."""

__version__ = "0.1.0"
