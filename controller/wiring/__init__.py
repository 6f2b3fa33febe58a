"""The composition root: the only way from the commands and the controller process (`run.py`) to the engine and the
adapters, checked by import-linter. `engines` wires one engine's reconciler and data operations (docker-py, probes,
lease); `local` reads this machine's files, state database and backups without loading either; `process` composes
the controller's loops, the sources that wake them and its HTTP exposition. Importing this package loads neither."""
