"""Store ownership: several processes, one embedded store (one owns it, the others forward to it)."""
