"""The AWS edge: retries and limits (:mod:`.retry`), boto3 clients (:mod:`.clients`), the S3 Vectors
index the worker writes (:mod:`.s3vectors`) and the Bedrock embedders (:mod:`.embedders`)."""
