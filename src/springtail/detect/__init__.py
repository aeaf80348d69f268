"""Springtails in whole microscope photos: candidate boxes, named by the trained ensemble,
counted per species (``springtail-count``), and scored against the annotations."""
