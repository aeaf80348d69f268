"""The human-readable report: a self-contained HTML page of scores, crop galleries and
class-activation heatmaps (``build``), with its pieces: crop selection (``gallery``),
heatmaps (``gradcam``), pictures (``images``) and markup (``html``)."""
