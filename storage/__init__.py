"""Storage: the core every door stands on.

`usecases` (what a door may ask) over `ownership` (one process owns the embedded store, the others forward to
it) over `store` (the façade holding the lock) over `services` (one concern each) over `repositories` (all SQL;
one implementation per database backend). Nothing here imports MCP, HTTP, `server` or `tools`: import-linter
checks it (pyproject.toml).
"""
