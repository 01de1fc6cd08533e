"""The MCP application: settings, construction, resources, notifications, transports and CLI."""
