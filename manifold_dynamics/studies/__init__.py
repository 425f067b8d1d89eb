"""The studies: one module per experiment family, each only orchestrating. A study builds its
configs or points, trains them on a skeleton (skeleton.Study for one run, sweeps.Sweep for a
sweep of run directories), hands the records to analysis/ and draws with its own module of
plotting/; device work stays in engine/, file formats in records/.

May import: every layer below it (errors, data/, records/, config, engine/, analysis/,
plotting/).
"""
