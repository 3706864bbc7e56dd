"""Durable state: SQLite (WAL) under $JOBSCHED_HOME."""

from jobsched.store.sqlite import AttemptRow, JobRow, Store

__all__ = ["AttemptRow", "JobRow", "Store"]
