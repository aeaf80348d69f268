"""Using a trained pipeline on new images: ``springtail-identify`` (crops in, species out)."""
