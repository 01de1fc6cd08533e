"""The PostgreSQL backend: the repository interfaces over a shared catalog, for any number of replicas."""
