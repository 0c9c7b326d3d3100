# ---------------------------------------------------------------------------------------------------
# Query Lambda: SQL (aws_lambda.invoke) -> lambda/handler.py -> S3 Vectors (and Bedrock for query_text).
# ---------------------------------------------------------------------------------------------------

locals {
  lambda_source_dir = var.lambda_source_dir != null ? var.lambda_source_dir : "${path.module}/../../../lambda"

  # Tests, build output and caches never go into the package.
  lambda_excludes = setunion(
    fileset(local.lambda_source_dir, "tests/**"),
    fileset(local.lambda_source_dir, "build/**"),
    fileset(local.lambda_source_dir, "**/__pycache__/**"),
    fileset(local.lambda_source_dir, "**/*.pyc"),
    fileset(local.lambda_source_dir, ".pytest_cache/**"),
  )

  lambda_package_path = var.lambda_package_path != null ? var.lambda_package_path : data.archive_file.lambda[0].output_path
  lambda_package_hash = var.lambda_package_path != null ? filebase64sha256(var.lambda_package_path) : data.archive_file.lambda[0].output_base64sha256
}

data "archive_file" "lambda" {
  count = var.lambda_package_path == null ? 1 : 0

  type             = "zip"
  source_dir       = local.lambda_source_dir
  excludes         = local.lambda_excludes
  output_path      = "${path.root}/.terraform/${var.name}-query-lambda.zip"
  output_file_mode = "0644"
}

resource "aws_security_group" "lambda" {
  name        = "${var.name}-query-lambda"
  description = "s3vl query Lambda: no inbound, HTTPS out to S3 Vectors and Bedrock"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_https" {
  for_each = toset(var.https_egress_cidr_blocks)

  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to AWS APIs (S3 Vectors, Bedrock Runtime) via VPC endpoints or NAT"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_sqs_queue" "lambda_dlq" {
  name                              = "${var.name}-query-lambda-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = local.tags
}

resource "aws_cloudwatch_log_group" "lambda" {
  name              = local.lambda_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${var.name}-query-lambda"
  description        = "s3vl query Lambda: read the declared S3 Vectors indexes, invoke the embedding model"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid = "ReadDeclaredIndexes"
    # QueryVectors needs GetVectors too when it filters on metadata or returns metadata.
    actions = [
      "s3vectors:QueryVectors",
      "s3vectors:GetVectors",
      "s3vectors:ListVectors",
      "s3vectors:GetIndex",
    ]
    resources = values(local.index_arns)
  }

  statement {
    sid       = "EmbedQueryText"
    actions   = ["bedrock:InvokeModel"]
    resources = local.bedrock_model_arns
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }

  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.lambda_dlq.arn]
  }

  statement {
    sid       = "ModuleKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arn]
  }

  dynamic "statement" {
    for_each = local.vector_bucket_sse_kms ? [local.vector_bucket_kms_key_arn] : []

    content {
      sid       = "VectorBucketKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "${var.name}-query-lambda"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# ENI management for a function in a VPC: the AWS managed policy is the documented minimum
# (ec2:CreateNetworkInterface & co. cannot be scoped to resources Lambda creates on its own).
resource "aws_iam_role_policy_attachment" "lambda_vpc" {
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "lambda_xray" {
  count = var.lambda_tracing_mode == "Active" ? 1 : 0

  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

resource "aws_lambda_function" "query" {
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed S3 artifact; the package is built from the reviewed repository by this module (README: how to add code signing).
  function_name = local.lambda_function_name
  description   = "s3vl query Lambda: S3 Vectors QueryVectors/GetVectors/ListVectors for SQL (aws_lambda.invoke)"
  role          = aws_iam_role.lambda.arn

  filename         = local.lambda_package_path
  source_code_hash = local.lambda_package_hash
  handler          = "handler.lambda_handler"
  runtime          = var.lambda_runtime
  architectures    = [var.lambda_architecture]
  timeout          = var.lambda_timeout
  memory_size      = var.lambda_memory_size

  reserved_concurrent_executions = var.lambda_reserved_concurrency
  kms_key_arn                    = local.kms_key_arn

  environment {
    variables = merge(var.lambda_environment, {
      S3VL_DEFAULT_REGION  = local.region
      S3VL_QUERY_LOG_LEVEL = var.lambda_log_level
    })
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.lambda.id]
  }

  # Only asynchronous invocations (aws_lambda.invoke(..., 'Event')) can land here; SQL calls are synchronous.
  dead_letter_config {
    target_arn = aws_sqs_queue.lambda_dlq.arn
  }

  tracing_config {
    mode = var.lambda_tracing_mode
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.lambda.name
    application_log_level = var.lambda_log_level
    system_log_level      = "WARN"
  }

  tags = local.tags

  depends_on = [
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.lambda_vpc,
  ]

  lifecycle {
    precondition {
      condition     = var.create_kms_key || var.kms_key_arn != null
      error_message = "Set kms_key_arn when create_kms_key is false."
    }
  }
}
