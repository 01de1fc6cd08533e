"""Search index over artifacts: chunking, and what builds on it."""
