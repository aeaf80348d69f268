"""springtail: a reproducible pipeline that identifies Collembola in microscope images."""

__version__ = "0.1.0"
