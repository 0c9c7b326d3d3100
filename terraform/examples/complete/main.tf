# Deploys s3vl next to an existing Aurora PostgreSQL cluster. Step by step: ../../README.md.

# Image repository for the worker / reconcile image (the repository's Dockerfile).
resource "aws_ecr_repository" "worker" {
  name                 = "${var.name}-worker"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "worker" {
  repository = aws_ecr_repository.worker.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 20 most recent images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 20
      }
      action = { type = "expire" }
    }]
  })
}

module "s3vl" {
  source = "../../modules/s3vl"

  name = var.name

  vpc_id                        = var.vpc_id
  subnet_ids                    = var.private_subnet_ids
  aurora_cluster_identifier     = var.aurora_cluster_identifier
  aurora_security_group_id      = var.aurora_security_group_id
  existing_rds_lambda_role_name = var.existing_rds_lambda_role_name

  vector_bucket_name               = var.vector_bucket_name
  vector_bucket_use_module_kms_key = var.vector_bucket_use_module_kms_key
  indexes                          = var.indexes
  embedding_model_ids              = ["amazon.titan-embed-text-v2:0"]

  # Built by terraform/scripts/build_lambda.sh: lambda/ plus lambda/requirements.txt (README step 1).
  lambda_source_dir = "${path.module}/../../../lambda/build/package"

  container_image = "${aws_ecr_repository.worker.repository_url}:${var.image_tag}"
  sync_names      = var.sync_names

  create_vpc_endpoints         = var.create_vpc_endpoints
  vpc_endpoint_route_table_ids = var.private_route_table_ids
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email != null ? 1 : 0

  topic_arn = module.s3vl.alarm_topic_arn
  protocol  = "email"
  endpoint  = var.alarm_email
}
