"""The web console at /ui: server-rendered pages (Jinja2, htmx served from the package) over the same use cases as
every other door, signed in with the same tokens."""
