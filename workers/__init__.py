"""Replica runtime: ``python -m workers.train --kernel NAME`` trains one rank of a TrainingJob."""
