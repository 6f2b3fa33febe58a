"""dbstate: run the databases of a self-hosted platform from git."""

__version__ = "0.1.0"
