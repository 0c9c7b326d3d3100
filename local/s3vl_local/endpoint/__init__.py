"""The local AWS endpoint: S3 Vectors, Bedrock Runtime and Lambda in one threaded process.

Start it with ``python -m s3vl_local.endpoint --host 127.0.0.1 --port P --data-dir D``;
:mod:`.app` documents how services register, :mod:`.process` starts it in the background,
:mod:`.admin` is the client for its ``/_s3vl/`` admin routes.
"""
