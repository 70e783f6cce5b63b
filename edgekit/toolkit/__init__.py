"""Core types of edgekit: formats, the I/O contract, registries, errors, artifacts. Framework-free."""
