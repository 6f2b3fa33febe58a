"""Developer tooling shared by the tests, the benchmarks and scripts/local-engine: a private Docker engine and
stand-in database images built from Debian packages (no Docker Hub here)."""
