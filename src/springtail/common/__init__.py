"""Shared basics every stage uses: classes, params, file I/O, the error policy, the raw formats."""
