"""Document generation: gather material, write (client model or extractive), render markdown/HTML/JSON/PDF."""
