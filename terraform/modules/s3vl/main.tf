data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

data "aws_rds_cluster" "aurora" {
  cluster_identifier = var.aurora_cluster_identifier
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  # Keys every s3vl index stores without making them filterable (DESIGN.md "Vectors").
  reserved_non_filterable_keys = ["s3vl_hash", "s3vl_text"]

  index_arns = { for name, index in aws_s3vectors_index.this : name => index.index_arn }

  # Least privilege: exactly the embedding models declared, never a wildcard.
  bedrock_model_arns = [
    for model in var.embedding_model_ids : "arn:${local.partition}:bedrock:${local.region}::foundation-model/${model}"
  ]

  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  # SSE-KMS on the vector bucket: decided from plan-time inputs, so policies keep a known shape.
  vector_bucket_sse_kms     = var.vector_bucket_kms_key_arn != null || var.vector_bucket_use_module_kms_key
  vector_bucket_kms_key_arn = var.vector_bucket_kms_key_arn != null ? var.vector_bucket_kms_key_arn : (var.vector_bucket_use_module_kms_key ? local.kms_key_arn : null)
  vector_bucket_arn_pattern = "arn:${local.partition}:s3vectors:${local.region}:${local.account_id}:bucket/${var.vector_bucket_name}"

  lambda_function_name = "${var.name}-query"
  lambda_log_group     = "/aws/lambda/${local.lambda_function_name}"
  worker_log_group     = "/ecs/${var.name}-worker"
  reconcile_log_group  = "/ecs/${var.name}-reconcile"
  ecs_exec_log_group   = "/ecs/${var.name}-exec"

  database_url_secret_arn = var.create_database_url_secret ? aws_secretsmanager_secret.database_url[0].arn : var.database_url_secret_arn

  ecs_cluster_arn = var.create_ecs_cluster ? aws_ecs_cluster.this[0].arn : var.ecs_cluster_arn
  # Known at plan time when the module creates the cluster; else the last part of arn:...:cluster/NAME.
  ecs_cluster_name = var.create_ecs_cluster ? var.name : element(split("/", var.ecs_cluster_arn), length(split("/", var.ecs_cluster_arn)) - 1)

  endpoint_allowed_cidrs = var.vpc_endpoint_allowed_cidr_blocks != null ? var.vpc_endpoint_allowed_cidr_blocks : [data.aws_vpc.this.cidr_block]

  alarm_actions = concat(var.alarm_actions, aws_sns_topic.alarms[*].arn)

  tags = merge({ "s3vl:component" = var.name }, var.tags)
}

# ---------------------------------------------------------------------------------------------------
# KMS: one customer managed key for logs, queues, the secret, the topic, the schedule, Lambda env.
# ---------------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; the root statement delegates to IAM (AWS default key policy).
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; write access is limited to the account and the named services.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only, it cannot name another resource.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogs"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}-*",
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/ecs/${var.name}-*",
      ]
    }
  }

  # S3 Vectors maintains and optimises indexes in the background with the bucket's key.
  dynamic "statement" {
    for_each = var.vector_bucket_use_module_kms_key && var.vector_bucket_kms_key_arn == null ? [1] : []

    content {
      sid       = "S3VectorsIndexing"
      actions   = ["kms:Decrypt"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["indexing.s3vectors.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }

      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = [local.vector_bucket_arn_pattern, "${local.vector_bucket_arn_pattern}/*"]
      }
    }
  }

  statement {
    sid       = "CloudWatchAlarmsToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "${var.name}: logs, queues, database URL secret, alarm topic, schedule, Lambda environment"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}
