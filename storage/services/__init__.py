"""The store's services: one concern each, composed by `storage.store.ArtifactStore`."""
