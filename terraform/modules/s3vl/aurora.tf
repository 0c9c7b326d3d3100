# ---------------------------------------------------------------------------------------------------
# Aurora -> Lambda: a role trusted by rds.amazonaws.com that may invoke only the query Lambda,
# associated with the cluster for the "Lambda" feature (aws_lambda extension).
# A cluster has at most one role for the Lambda feature: set existing_rds_lambda_role_name to reuse it.
# ---------------------------------------------------------------------------------------------------

locals {
  create_rds_role = var.existing_rds_lambda_role_name == null
  rds_role_name   = local.create_rds_role ? aws_iam_role.rds_lambda[0].name : var.existing_rds_lambda_role_name
  rds_role_arn    = local.create_rds_role ? aws_iam_role.rds_lambda[0].arn : data.aws_iam_role.existing_rds_lambda[0].arn
}

data "aws_iam_role" "existing_rds_lambda" {
  count = local.create_rds_role ? 0 : 1

  name = var.existing_rds_lambda_role_name
}

data "aws_iam_policy_document" "rds_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["rds.amazonaws.com"]
    }

    # Confused-deputy guard: only this cluster may use the role.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [data.aws_rds_cluster.aurora.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "rds_lambda" {
  count = local.create_rds_role ? 1 : 0

  name               = "${var.name}-aurora-invoke-lambda"
  description        = "Aurora cluster ${var.aurora_cluster_identifier}: aws_lambda.invoke of the s3vl query Lambda"
  assume_role_policy = data.aws_iam_policy_document.rds_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "rds_lambda" {
  statement {
    sid       = "InvokeQueryLambda"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.query.arn]
  }
}

# Attached to the new role, or to the cluster's existing Lambda role when one is reused.
resource "aws_iam_role_policy" "rds_lambda" {
  name   = "${var.name}-invoke-query-lambda"
  role   = local.rds_role_name
  policy = data.aws_iam_policy_document.rds_lambda.json
}

resource "aws_rds_cluster_role_association" "lambda" {
  count = local.create_rds_role ? 1 : 0

  db_cluster_identifier = var.aurora_cluster_identifier
  feature_name          = "Lambda"
  role_arn              = aws_iam_role.rds_lambda[0].arn
}
