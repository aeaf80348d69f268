"""The model bundle: one self-contained, versioned folder that identifies and counts."""
