"""The review stage: the model as a fifth opinion on every box, second-pass training
targets, and the list of boxes an expert should look at first."""
