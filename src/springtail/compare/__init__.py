"""Comparing two variants of the pipeline: ``springtail-compare REV_A REV_B`` (a paired
bootstrap of macro F1 on the same validation and public test crops, against the seed noise)."""
