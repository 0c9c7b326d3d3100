# ---------------------------------------------------------------------------------------------------
# Sync worker (ECS Fargate service) and nightly reconcile job (EventBridge Scheduler -> ECS RunTask),
# one image (repository Dockerfile, entrypoint s3vl). The database URL comes from Secrets Manager.
# ---------------------------------------------------------------------------------------------------

# The secret holds the whole URL (postgresql://s3vl_worker:<password>@host:5432/db?sslmode=verify-full).
# Terraform creates the container only: the value is put with the AWS CLI, so it never enters state.
resource "aws_secretsmanager_secret" "database_url" {
  #checkov:skip=CKV2_AWS_57:The value is a database URL managed outside Terraform; rotate the worker's database password with the rotation of your Aurora users and put the new URL (README).
  count = var.create_database_url_secret ? 1 : 0

  name_prefix             = "${var.name}/database-url-"
  description             = "s3vl worker/reconcile database URL, injected as S3VL_DATABASE_URL"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = local.worker_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "reconcile" {
  name              = local.reconcile_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "ecs_exec" {
  count = var.create_ecs_cluster ? 1 : 0

  name              = local.ecs_exec_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_ecs_cluster" "this" {
  count = var.create_ecs_cluster ? 1 : 0

  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = local.kms_key_arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.ecs_exec[0].name
      }
    }
  }

  tags = local.tags
}

# --- network --------------------------------------------------------------------------------------

resource "aws_security_group" "worker" {
  name        = "${var.name}-worker"
  description = "s3vl sync worker and reconcile tasks: no inbound, PostgreSQL to Aurora, HTTPS to AWS APIs"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "worker_https" {
  for_each = toset(var.https_egress_cidr_blocks)

  security_group_id = aws_security_group.worker.id
  description       = "HTTPS to AWS APIs (S3 Vectors, Bedrock, Secrets Manager, Logs, ECR) via VPC endpoints or NAT"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "worker_postgres" {
  security_group_id            = aws_security_group.worker.id
  description                  = "PostgreSQL to the Aurora cluster"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = var.aurora_security_group_id
}

resource "aws_vpc_security_group_ingress_rule" "aurora_from_worker" {
  count = var.manage_aurora_ingress ? 1 : 0

  security_group_id            = var.aurora_security_group_id
  description                  = "s3vl sync worker and reconcile tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.worker.id
}

# --- roles ----------------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# Execution role: used by the ECS agent to pull the image, write logs and read the secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-ecs-execution"
  description        = "s3vl ECS execution role: pull image, write logs, read the database URL secret"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ReadDatabaseUrl"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.database_url_secret_arn]
  }

  statement {
    sid       = "DecryptDatabaseUrl"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "${var.name}-ecs-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role: what the worker and reconcile code may do.
resource "aws_iam_role" "task" {
  name               = "${var.name}-worker"
  description        = "s3vl sync worker and reconcile: write the declared S3 Vectors indexes, invoke the embedding model"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "SyncDeclaredIndexes"
    actions = [
      "s3vectors:PutVectors",
      "s3vectors:DeleteVectors",
      "s3vectors:GetVectors",
      "s3vectors:ListVectors",
      "s3vectors:QueryVectors",
      "s3vectors:GetIndex",
    ]
    resources = values(local.index_arns)
  }

  statement {
    sid       = "Embed"
    actions   = ["bedrock:InvokeModel"]
    resources = local.bedrock_model_arns
  }

  dynamic "statement" {
    for_each = local.vector_bucket_sse_kms ? [local.vector_bucket_kms_key_arn] : []

    content {
      sid       = "VectorBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "${var.name}-worker"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- task definitions -----------------------------------------------------------------------------

locals {
  container_environment = [
    for k, v in merge(var.worker_environment, {
      AWS_REGION        = local.region
      S3VL_METRICS_PORT = tostring(var.metrics_port)
    }) : { name = k, value = v }
  ]

  container_secrets = [
    { name = "S3VL_DATABASE_URL", valueFrom = local.database_url_secret_arn },
  ]

  # The root filesystem is read-only; /tmp is a task-local scratch volume.
  container_common = {
    image                  = var.container_image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    environment            = local.container_environment
    secrets                = local.container_secrets
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    linuxParameters        = { initProcessEnabled = true }
  }
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([merge(local.container_common, {
    name        = "worker"
    command     = ["worker"]
    stopTimeout = 60
    portMappings = [
      { containerPort = var.metrics_port, protocol = "tcp", name = "metrics" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  })])

  tags = local.tags
}

resource "aws_ecs_task_definition" "reconcile" {
  family                   = "${var.name}-reconcile"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.reconcile_cpu
  memory                   = var.reconcile_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([merge(local.container_common, {
    name    = "reconcile"
    command = ["reconcile", "--apply", "--json"]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.reconcile.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "reconcile"
      }
    }
  })])

  tags = local.tags
}

# --- worker service and autoscaling on outbox lag ------------------------------------------------

resource "aws_ecs_service" "worker" {
  name            = "${var.name}-worker"
  cluster         = local.ecs_cluster_arn
  task_definition = aws_ecs_task_definition.worker.arn
  desired_count   = var.worker_desired_count

  launch_type      = "FARGATE"
  platform_version = "LATEST"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"
  tags                    = local.tags

  # Autoscaling owns desired_count after creation.
  lifecycle {
    ignore_changes = [desired_count]

    precondition {
      condition     = var.create_ecs_cluster || var.ecs_cluster_arn != null
      error_message = "Set ecs_cluster_arn when create_ecs_cluster is false."
    }

    precondition {
      condition     = var.create_database_url_secret || var.database_url_secret_arn != null
      error_message = "Set database_url_secret_arn when create_database_url_secret is false."
    }

    precondition {
      condition     = var.worker_min_count <= var.worker_desired_count && var.worker_desired_count <= var.worker_max_count
      error_message = "worker_desired_count must lie between worker_min_count and worker_max_count."
    }
  }
}

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${local.ecs_cluster_name}/${aws_ecs_service.worker.name}"
  min_capacity       = var.worker_min_count
  max_capacity       = var.worker_max_count
  tags               = local.tags
}

resource "aws_appautoscaling_policy" "worker_out" {
  name               = "${var.name}-worker-scale-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  resource_id        = aws_appautoscaling_target.worker.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 120
    metric_aggregation_type = "Maximum"

    # Lag above the threshold: +1 task; above 5x the threshold: +2 tasks.
    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = var.worker_scale_out_lag_seconds * 4
      scaling_adjustment          = 1
    }

    step_adjustment {
      metric_interval_lower_bound = var.worker_scale_out_lag_seconds * 4
      scaling_adjustment          = 2
    }
  }
}

resource "aws_appautoscaling_policy" "worker_in" {
  name               = "${var.name}-worker-scale-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  resource_id        = aws_appautoscaling_target.worker.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

# --- nightly reconcile ------------------------------------------------------------------------------

resource "aws_sqs_queue" "scheduler_dlq" {
  count = var.reconcile_enabled ? 1 : 0

  name                              = "${var.name}-reconcile-schedule-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = local.tags
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = var.reconcile_enabled ? 1 : 0

  name               = "${var.name}-reconcile-scheduler"
  description        = "EventBridge Scheduler: start the s3vl reconcile task"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunReconcileTask"
    actions   = ["ecs:RunTask"]
    resources = ["${aws_ecs_task_definition.reconcile.arn_without_revision}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.ecs_cluster_arn]
    }
  }

  # RunTask with ECS managed tags / propagated tags tags the new task, which needs ecs:TagResource.
  statement {
    sid       = "TagReconcileTask"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.ecs_cluster_name}/*"]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = aws_sqs_queue.scheduler_dlq[*].arn
  }

  statement {
    sid       = "ModuleKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = var.reconcile_enabled ? 1 : 0

  name   = "${var.name}-reconcile-scheduler"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "reconcile" {
  count = var.reconcile_enabled ? 1 : 0

  name                         = "${var.name}-reconcile"
  description                  = "s3vl reconcile --apply --json: repair drift between the database and S3 Vectors"
  schedule_expression          = var.reconcile_schedule_expression
  schedule_expression_timezone = var.reconcile_schedule_timezone
  kms_key_arn                  = local.kms_key_arn

  flexible_time_window {
    mode                      = "FLEXIBLE"
    maximum_window_in_minutes = 15
  }

  target {
    arn      = local.ecs_cluster_arn
    role_arn = aws_iam_role.scheduler[0].arn

    ecs_parameters {
      task_definition_arn     = aws_ecs_task_definition.reconcile.arn
      launch_type             = "FARGATE"
      task_count              = 1
      enable_ecs_managed_tags = true
      propagate_tags          = "TASK_DEFINITION"

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.worker.id]
        assign_public_ip = false
      }
    }

    dead_letter_config {
      arn = aws_sqs_queue.scheduler_dlq[0].arn
    }

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }
  }
}
