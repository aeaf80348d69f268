"""The user commands springtail-identify and springtail-count: a model bundle applied to a
folder of crops or of whole photos (they sit above the library, which never imports them)."""
