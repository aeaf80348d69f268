"""The crops stage: square crops of every box (and of background) with their folds."""
