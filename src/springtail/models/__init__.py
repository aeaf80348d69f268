"""Image classifiers behind one scikit-learn-like contract, chosen by name.

The registry lives in ``springtail.models.registry`` (imported explicitly, so
the low-level modules here, e.g. ``augment``, load without the whole stack).
"""
