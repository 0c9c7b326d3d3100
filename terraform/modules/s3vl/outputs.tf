locals {
  sql_configure = "SELECT s3vl.configure('${aws_lambda_function.query.arn}', '${local.region}');"
  sql_register_indexes = [
    for name, index in aws_s3vectors_index.this :
    "SELECT s3vl.register_index('${replace(name, "'", "''")}', '${index.index_arn}', '${replace(var.indexes[name].description, "'", "''")}');"
  ]
}

output "vector_bucket_name" {
  description = "Name of the S3 Vectors bucket."
  value       = aws_s3vectors_vector_bucket.this.vector_bucket_name
}

output "vector_bucket_arn" {
  description = "ARN of the S3 Vectors bucket."
  value       = aws_s3vectors_vector_bucket.this.vector_bucket_arn
}

output "index_arns" {
  description = "ARN of each vector index, by index name (the second argument of s3vl.register_index)."
  value       = local.index_arns
}

output "lambda_function_arn" {
  description = "ARN of the query Lambda (the first argument of s3vl.configure)."
  value       = aws_lambda_function.query.arn
}

output "lambda_function_name" {
  description = "Name of the query Lambda."
  value       = aws_lambda_function.query.function_name
}

output "lambda_security_group_id" {
  description = "Security group of the query Lambda."
  value       = aws_security_group.lambda.id
}

output "lambda_dead_letter_queue_arn" {
  description = "Dead-letter queue of the query Lambda (asynchronous invocations only)."
  value       = aws_sqs_queue.lambda_dlq.arn
}

output "rds_lambda_role_arn" {
  description = "ARN of the role Aurora uses to invoke the query Lambda (created or reused)."
  value       = local.rds_role_arn
}

output "rds_lambda_role_name" {
  description = "Name of the role Aurora uses to invoke the query Lambda (created or reused)."
  value       = local.rds_role_name
}

output "database_url_secret_arn" {
  description = "Secrets Manager secret holding the worker's database URL: put its value with aws secretsmanager put-secret-value (README)."
  value       = local.database_url_secret_arn
}

output "worker_security_group_id" {
  description = "Security group of the worker and reconcile tasks (Aurora must admit it on the database port)."
  value       = aws_security_group.worker.id
}

output "ecs_cluster_arn" {
  description = "ECS cluster running the worker service and the reconcile task."
  value       = local.ecs_cluster_arn
}

output "worker_service_name" {
  description = "Name of the worker ECS service."
  value       = aws_ecs_service.worker.name
}

output "worker_task_role_arn" {
  description = "Role of the worker and reconcile code (S3 Vectors writes, Bedrock)."
  value       = aws_iam_role.task.arn
}

output "reconcile_task_definition_arn" {
  description = "Task definition of the reconcile job (run it by hand with aws ecs run-task)."
  value       = aws_ecs_task_definition.reconcile.arn
}

output "lambda_log_group_name" {
  description = "Log group of the query Lambda."
  value       = aws_cloudwatch_log_group.lambda.name
}

output "worker_log_group_name" {
  description = "Log group of the worker (its EMF lines carry OutboxLagSeconds and FailedRows)."
  value       = aws_cloudwatch_log_group.worker.name
}

output "reconcile_log_group_name" {
  description = "Log group of the reconcile job (its EMF lines carry ReconcileDrift)."
  value       = aws_cloudwatch_log_group.reconcile.name
}

output "kms_key_arn" {
  description = "KMS key encrypting the log groups, queues, secret, topic, schedule and Lambda environment."
  value       = local.kms_key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (null when create_alarm_topic is false)."
  value       = var.create_alarm_topic ? aws_sns_topic.alarms[0].arn : null
}

output "sql_setup_statements" {
  description = "The SQL to run once in the database after apply: s3vl.configure, then s3vl.register_index for each index."
  value       = concat([local.sql_configure], local.sql_register_indexes)
}

output "sql_setup" {
  description = "sql_setup_statements as one script (terraform output -raw sql_setup | psql \"$DATABASE_URL\")."
  value       = join("\n", concat([local.sql_configure], local.sql_register_indexes))
}
