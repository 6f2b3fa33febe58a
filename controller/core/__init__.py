"""The pure core: models, diff and plan. No I/O and no third-party I/O library is imported below here."""
