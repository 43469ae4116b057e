"""User image sets: ingest + validation, captions, buckets, hold-out split, the Dataset."""
