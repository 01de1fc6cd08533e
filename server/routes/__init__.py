"""HTTP routes beside MCP: health, download links, the REST mirror."""
