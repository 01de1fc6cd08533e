"""The DuckDB backend (the embedded default): every repository interface of `protocols.py` over one file."""
