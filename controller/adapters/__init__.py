"""Adapters: the only place that imports third-party I/O libraries (Docker, database clients, YAML, git, files)."""
