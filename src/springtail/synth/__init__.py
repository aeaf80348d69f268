"""The synthetic stand-in for the Collembola challenge data (the pipeline's default input).

``generate(SynthConfig(...), out)`` writes training pictures with YOLO+
annotations voted by four simulated experts, test crops, a sample submission
and the answer files, in the real competition's layout. Statistics (boxes per
image, class frequencies, box geometry, expert agreement and confusions) are
calibrated to the real data; see :mod:`springtail.synth.reference`.
"""

from springtail.synth.generate import SynthConfig, generate

__all__ = ["SynthConfig", "generate"]
