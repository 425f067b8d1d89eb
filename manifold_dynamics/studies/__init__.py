"""The studies: one module per experiment family, each on the skeleton of skeleton.py (open
the run directory, load the task, write the config, train, analyse, draw, commit)."""
