"""Who is calling: principals, their tokens, and how HTTP requests are authenticated."""
