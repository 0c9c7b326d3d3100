"""s3vl: keep Amazon S3 Vectors in step with PostgreSQL, and query the vectors from SQL."""

__version__ = "0.1.0"
