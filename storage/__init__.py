"""Storage layer: DuckDB catalog, fsspec blobs, and the ArtifactService facade over them.

Nothing here imports MCP; the server and tools sit on top of `ArtifactService`.
"""
