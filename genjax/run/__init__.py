"""The composition layer the CLI and the Python API share (above data, models, train and eval):
a run prepared once (``prepare``), the run folder (``folder``: lock, atomic creation,
run.json), the evaluation report (``report``), benchmarks of the program ``genjax train`` runs
(``bench``)."""
