"""The consensus stage: expert annotations in, one label per box out."""
