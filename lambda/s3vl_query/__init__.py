"""The s3vl query Lambda's package: request validation, AWS calls, operations, errors."""
