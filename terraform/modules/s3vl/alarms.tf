# ---------------------------------------------------------------------------------------------------
# CloudWatch alarms. Lambda metrics come from AWS/Lambda; the sync metrics are published by the worker
# and the reconcile job in namespace "s3vl", dimension Sync=<sync name>, through CloudWatch embedded
# metric format (EMF) log lines:
#   OutboxLagSeconds  age of the oldest pending outbox row        (worker, every S3VL_EMF_INTERVAL_SECONDS)
#   FailedRows        outbox rows that exhausted their retries    (worker, every S3VL_EMF_INTERVAL_SECONDS)
#   ReconcileDrift    orphans + missing + stale + metadata-drift  (reconcile, each run; keys already
#                     keys found                                  queued in the outbox are lag, not drift)
#   ReconcileFailed   1 when a run failed for the sync (Sync="*": (reconcile, each run)
#                     the run failed before it knew its syncs)    see sync/telemetry/emf.py
# ---------------------------------------------------------------------------------------------------

locals {
  metric_namespace = "s3vl"
  syncs            = toset(var.sync_names)
}

resource "aws_sns_topic" "alarms" {
  count = var.create_alarm_topic ? 1 : 0

  name              = "${var.name}-alarms"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  alarm_name          = "${var.name}-query-lambda-errors"
  alarm_description   = "s3vl query Lambda returned errors (SQL callers see them as errors too)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.query.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.lambda_errors_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  alarm_name          = "${var.name}-query-lambda-throttles"
  alarm_description   = "s3vl query Lambda throttled: raise lambda_reserved_concurrency or slow the SQL callers."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.query.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.lambda_throttles_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_dlq" {
  alarm_name          = "${var.name}-query-lambda-dlq"
  alarm_description   = "Asynchronous invocations of the s3vl query Lambda failed and were parked in its dead-letter queue."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.lambda_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "reconcile_not_started" {
  count = var.reconcile_enabled ? 1 : 0

  alarm_name          = "${var.name}-reconcile-not-started"
  alarm_description   = "EventBridge Scheduler could not start the s3vl reconcile task (see its dead-letter queue for the error)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.scheduler_dlq[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "outbox_lag" {
  for_each = local.syncs

  alarm_name          = "${var.name}-${each.key}-outbox-lag"
  alarm_description   = "Sync ${each.key}: the oldest pending change is older than ${var.lag_alarm_threshold_seconds}s (worker down, Bedrock/S3 Vectors throttling, or too few workers)."
  namespace           = local.metric_namespace
  metric_name         = "OutboxLagSeconds"
  dimensions          = { Sync = each.key }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.lag_alarm_threshold_seconds
  treat_missing_data  = var.lag_alarm_treat_missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "failed_rows" {
  for_each = local.syncs

  alarm_name          = "${var.name}-${each.key}-failed-rows"
  alarm_description   = "Sync ${each.key}: outbox rows failed permanently; inspect s3vl status, fix, then s3vl retry-failed."
  namespace           = local.metric_namespace
  metric_name         = "FailedRows"
  dimensions          = { Sync = each.key }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.failed_rows_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "reconcile_drift" {
  for_each = local.syncs

  alarm_name          = "${var.name}-${each.key}-reconcile-drift"
  alarm_description   = "Sync ${each.key}: the reconcile job found drift between the table and the index (it repaired it with --apply; find the cause)."
  namespace           = local.metric_namespace
  metric_name         = "ReconcileDrift"
  dimensions          = { Sync = each.key }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.reconcile_drift_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "reconcile_failed" {
  # every sync, and "*": a run that failed before it knew its syncs (the database unreachable)
  for_each = var.reconcile_enabled ? setunion(local.syncs, ["*"]) : toset([])

  alarm_name          = each.key == "*" ? "${var.name}-reconcile-failed" : "${var.name}-${each.key}-reconcile-failed"
  alarm_description   = each.key == "*" ? "The reconcile job failed before it reached any sync (see its log group)." : "Sync ${each.key}: the reconcile job failed for this sync; its drift is unknown (see the reconcile log group)."
  namespace           = local.metric_namespace
  metric_name         = "ReconcileFailed"
  dimensions          = { Sync = each.key }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# --- autoscaling signals: maximum lag over all syncs ------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "worker_scale_out" {
  count = length(var.sync_names) > 0 ? 1 : 0

  alarm_name          = "${var.name}-worker-scale-out"
  alarm_description   = "Outbox lag above ${var.worker_scale_out_lag_seconds}s: add a worker task."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.worker_scale_out_lag_seconds
  evaluation_periods  = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.worker_out.arn]
  tags                = local.tags

  metric_query {
    id          = "lag"
    expression  = "MAX([${join(",", [for i, s in var.sync_names : "m${i}"])}])"
    label       = "max OutboxLagSeconds"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = var.sync_names

    content {
      id = "m${metric_query.key}"

      metric {
        namespace   = local.metric_namespace
        metric_name = "OutboxLagSeconds"
        dimensions  = { Sync = metric_query.value }
        stat        = "Maximum"
        period      = 60
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "worker_scale_in" {
  count = length(var.sync_names) > 0 ? 1 : 0

  alarm_name          = "${var.name}-worker-scale-in"
  alarm_description   = "Outbox lag below ${var.worker_scale_in_lag_seconds}s for 15 minutes: remove a worker task."
  comparison_operator = "LessThanThreshold"
  threshold           = var.worker_scale_in_lag_seconds
  evaluation_periods  = 15
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.worker_in.arn]
  tags                = local.tags

  metric_query {
    id          = "lag"
    expression  = "MAX([${join(",", [for i, s in var.sync_names : "m${i}"])}])"
    label       = "max OutboxLagSeconds"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = var.sync_names

    content {
      id = "m${metric_query.key}"

      metric {
        namespace   = local.metric_namespace
        metric_name = "OutboxLagSeconds"
        dimensions  = { Sync = metric_query.value }
        stat        = "Maximum"
        period      = 60
      }
    }
  }
}
