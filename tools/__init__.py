"""MCP tools: one module per tool family, each thin (validate, call the store, shape the answer)."""
