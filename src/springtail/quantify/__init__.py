"""Species totals of a sample of photos that a biologist can report: corrected for the
classifier's bias under a shifted species mix and for the detector's misses and false
boxes, each with an interval (``species_totals``, fitted with a ``Calibration``)."""

from springtail.quantify.calibration import SPECIES, Calibration
from springtail.quantify.totals import COLUMNS, METHODS, species_totals

__all__ = ["COLUMNS", "METHODS", "SPECIES", "Calibration", "species_totals"]
