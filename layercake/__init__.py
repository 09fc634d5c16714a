"""layercake: the Python web stack, one layer at a time."""

__version__ = "0.1.0"
