"""The use cases: every operation a door offers, written once. MCP tools, the MechaMental and Aimable REST
routes (and the CLI) validate their input into the bodies of `bodies`, authorize an `Access`, and call these."""
