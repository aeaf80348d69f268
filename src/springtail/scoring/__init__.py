"""Scoring stages: per-model evaluation, the weighted ensemble and the submission file."""
