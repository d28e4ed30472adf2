"""Ingest: validate a release against ``schemas/``, repair what the seed paper repaired, reconcile
every row and file, and write the clean manifest with its logs."""
