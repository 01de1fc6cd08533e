"""Tables behind the store: typed rows, one interface per table family, one implementation per backend."""
