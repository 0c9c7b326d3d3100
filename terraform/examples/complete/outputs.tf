output "ecr_repository_url" {
  description = "Push the worker image here (README step 2)."
  value       = aws_ecr_repository.worker.repository_url
}

output "lambda_function_arn" {
  description = "ARN of the query Lambda."
  value       = module.s3vl.lambda_function_arn
}

output "index_arns" {
  description = "ARN of each vector index by name."
  value       = module.s3vl.index_arns
}

output "database_url_secret_arn" {
  description = "Secret to fill with the worker's database URL (README step 4)."
  value       = module.s3vl.database_url_secret_arn
}

output "rds_lambda_role_arn" {
  description = "Role Aurora uses to invoke the query Lambda."
  value       = module.s3vl.rds_lambda_role_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.s3vl.alarm_topic_arn
}

output "sql_setup" {
  description = "Run once in the database: terraform output -raw sql_setup | psql \"$ADMIN_DATABASE_URL\"."
  value       = module.s3vl.sql_setup
}
