# ---------------------------------------------------------------------------------------------------
# Naming, tags
# ---------------------------------------------------------------------------------------------------

variable "name" {
  description = "Prefix for every resource name (Lambda function, roles, ECS service, alarms, log groups)."
  type        = string
  default     = "s3vl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------------
# Network and the existing Aurora cluster
# ---------------------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the Aurora cluster; the query Lambda, the worker tasks and the optional VPC endpoints live in it."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (at least two, in different AZs) for the query Lambda, the worker/reconcile tasks and the interface endpoints."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids needs at least one subnet (two or more for high availability)."
  }
}

variable "aurora_cluster_identifier" {
  description = "Identifier of the existing Aurora PostgreSQL cluster that calls the query Lambda (aws_lambda extension)."
  type        = string
}

variable "aurora_security_group_id" {
  description = "Security group of the Aurora cluster: the worker's security group gets egress to it on database_port."
  type        = string
}

variable "manage_aurora_ingress" {
  description = "Add an ingress rule on aurora_security_group_id that admits the worker's security group on database_port. Turn off if the database team manages that group."
  type        = bool
  default     = true
}

variable "database_port" {
  description = "PostgreSQL port of the Aurora cluster."
  type        = number
  default     = 5432
}

variable "https_egress_cidr_blocks" {
  description = "Where the Lambda and the worker may open HTTPS (443) connections to reach AWS APIs: the VPC CIDR when every API is reached through VPC endpoints, or 0.0.0.0/0 through a NAT gateway."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# ---------------------------------------------------------------------------------------------------
# S3 Vectors
# ---------------------------------------------------------------------------------------------------

variable "vector_bucket_name" {
  description = "Name of the S3 Vectors bucket to create (3-63 lower-case letters, digits, hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.vector_bucket_name))
    error_message = "vector_bucket_name must be 3-63 lower-case letters, digits or hyphens, beginning and ending with a letter or digit."
  }
}

variable "vector_bucket_use_module_kms_key" {
  description = "Encrypt the vector bucket with SSE-KMS under the module's key (whose policy then admits the S3 Vectors indexing service for this bucket). false = SSE-S3, or vector_bucket_kms_key_arn. Fixed at creation."
  type        = bool
  default     = false
}

variable "vector_bucket_kms_key_arn" {
  description = "Your own customer managed KMS key for SSE-KMS on the vector bucket; its policy must admit the S3 Vectors indexing service (README). Takes precedence over vector_bucket_use_module_kms_key. null = see vector_bucket_use_module_kms_key. Fixed at creation."
  type        = string
  default     = null
}

variable "vector_bucket_force_destroy" {
  description = "Let terraform destroy delete the bucket's indexes and vectors. Keep false in production."
  type        = bool
  default     = false
}

variable "indexes" {
  description = <<-EOT
    Vector indexes to create, keyed by index name. dimension and distance_metric must match the sync's
    embedding model. non_filterable_metadata_keys lists extra keys that are stored but not filterable;
    s3vl_hash and s3vl_text are always added. description is passed to s3vl.register_index.
  EOT
  type = map(object({
    dimension                    = number
    distance_metric              = optional(string, "cosine")
    non_filterable_metadata_keys = optional(list(string), [])
    description                  = optional(string, "")
  }))

  validation {
    condition     = length(var.indexes) > 0
    error_message = "Declare at least one index."
  }

  validation {
    condition     = alltrue([for k, v in var.indexes : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", k))])
    error_message = "Index names must be 3-63 lower-case letters, digits, hyphens or dots, beginning and ending with a letter or digit."
  }

  validation {
    condition     = alltrue([for v in values(var.indexes) : v.dimension >= 1 && v.dimension <= 4096 && floor(v.dimension) == v.dimension])
    error_message = "dimension must be an integer between 1 and 4096."
  }

  validation {
    condition     = alltrue([for v in values(var.indexes) : contains(["cosine", "euclidean"], v.distance_metric)])
    error_message = "distance_metric must be cosine or euclidean."
  }

  validation {
    condition     = alltrue([for v in values(var.indexes) : length(setunion(toset(v.non_filterable_metadata_keys), ["s3vl_hash", "s3vl_text"])) <= 10])
    error_message = "An index allows at most 10 non-filterable metadata keys, two of which are s3vl_hash and s3vl_text."
  }
}

variable "embedding_model_ids" {
  description = "Bedrock foundation model ids that the worker (and the Lambda, for query_text) may invoke, e.g. amazon.titan-embed-text-v2:0."
  type        = list(string)
  default     = ["amazon.titan-embed-text-v2:0"]

  validation {
    condition     = length(var.embedding_model_ids) > 0 && alltrue([for m in var.embedding_model_ids : length(m) > 0 && !strcontains(m, "*")])
    error_message = "List at least one model id, and no wildcard (the roles may invoke exactly these models)."
  }
}

# ---------------------------------------------------------------------------------------------------
# Encryption
# ---------------------------------------------------------------------------------------------------

variable "create_kms_key" {
  description = "Create the customer managed KMS key (with rotation) for the log groups, queues, database URL secret, alarm topic, schedule and Lambda environment. false = use kms_key_arn."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Existing customer managed KMS key used when create_kms_key is false; its policy must admit CloudWatch Logs and CloudWatch alarms like the module's own key (main.tf)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------------
# Query Lambda
# ---------------------------------------------------------------------------------------------------

variable "lambda_source_dir" {
  description = "Folder zipped as the query Lambda (handler.py with lambda_handler, s3vl_query/). null = the repository's lambda/ folder as is (boto3 from the runtime). Point it at lambda/build/package after terraform/scripts/build_lambda.sh to ship lambda/requirements.txt too. Ignored when lambda_package_path is set."
  type        = string
  default     = null
}

variable "lambda_package_path" {
  description = "Path of a pre-built zip of the query Lambda (with its requirements vendored). null = zip lambda_source_dir with archive_file (see terraform/scripts/build_lambda.sh)."
  type        = string
  default     = null
}

variable "lambda_runtime" {
  description = "Python runtime of the query Lambda."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.11, python3.12 or python3.13."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the query Lambda: arm64 or x86_64."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_timeout" {
  description = "Timeout of the query Lambda in seconds. Keep it below the SQL statement_timeout of the callers."
  type        = number
  default     = 30
}

variable "lambda_memory_size" {
  description = "Memory of the query Lambda in MB (CPU scales with it)."
  type        = number
  default     = 512
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency of the query Lambda: caps how many SQL queries hit S3 Vectors at once and protects the rest of the account."
  type        = number
  default     = 20

  validation {
    condition     = var.lambda_reserved_concurrency >= 1
    error_message = "lambda_reserved_concurrency must be at least 1 (0 would disable the function)."
  }
}

variable "lambda_log_level" {
  description = "Log level of the query Lambda (S3VL_QUERY_LOG_LEVEL and Lambda's application log level): DEBUG, INFO, WARN or ERROR."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN", "ERROR"], var.lambda_log_level)
    error_message = "lambda_log_level must be DEBUG, INFO, WARN or ERROR."
  }
}

variable "lambda_environment" {
  description = "Extra environment variables of the query Lambda (e.g. S3VL_QUERY_READ_TIMEOUT_S, S3VL_QUERY_CONNECT_TIMEOUT_S). Never put secrets here."
  type        = map(string)
  default     = {}
}

variable "lambda_tracing_mode" {
  description = "X-Ray tracing of the query Lambda: Active or PassThrough."
  type        = string
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.lambda_tracing_mode)
    error_message = "lambda_tracing_mode must be Active or PassThrough."
  }
}

variable "log_retention_days" {
  description = "Retention of the Lambda, worker and reconcile log groups, in days."
  type        = number
  default     = 365
}

# ---------------------------------------------------------------------------------------------------
# Aurora -> Lambda role
# ---------------------------------------------------------------------------------------------------

variable "existing_rds_lambda_role_name" {
  description = "An Aurora cluster accepts one IAM role for the Lambda feature. If the cluster already has one, give its name: the module adds an invoke policy for the query Lambda to it and creates no new role or association. null = create a role and associate it."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------------
# Sync worker and reconcile job (ECS Fargate)
# ---------------------------------------------------------------------------------------------------

variable "container_image" {
  description = "Image of the sync worker / reconcile job built from the repository's Dockerfile (entrypoint s3vl), e.g. <account>.dkr.ecr.<region>.amazonaws.com/s3vl:0.1.0. Pin a tag or digest."
  type        = string
}

variable "create_ecs_cluster" {
  description = "Create an ECS cluster for the worker and the reconcile task. false = use ecs_cluster_arn."
  type        = bool
  default     = true
}

variable "ecs_cluster_arn" {
  description = "Existing ECS cluster used when create_ecs_cluster is false."
  type        = string
  default     = null
}

variable "cpu_architecture" {
  description = "CPU architecture of the worker image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "worker_cpu" {
  description = "Fargate CPU units of one worker task (256, 512, 1024, ...)."
  type        = number
  default     = 512
}

variable "worker_memory" {
  description = "Fargate memory of one worker task in MiB."
  type        = number
  default     = 1024
}

variable "worker_desired_count" {
  description = "Worker tasks started at creation; autoscaling moves it between worker_min_count and worker_max_count afterwards."
  type        = number
  default     = 1
}

variable "worker_min_count" {
  description = "Lowest number of worker tasks autoscaling may set."
  type        = number
  default     = 1
}

variable "worker_max_count" {
  description = "Highest number of worker tasks autoscaling may set (workers share the outbox through leases)."
  type        = number
  default     = 4
}

variable "worker_scale_out_lag_seconds" {
  description = "Outbox lag (seconds, maximum over the syncs) above which autoscaling adds a worker task."
  type        = number
  default     = 120
}

variable "worker_scale_in_lag_seconds" {
  description = "Outbox lag (seconds) below which autoscaling removes a worker task."
  type        = number
  default     = 10
}

variable "worker_environment" {
  description = "Extra plain environment variables of the worker and reconcile containers (S3VL_* settings). Never put secrets here."
  type        = map(string)
  default     = {}

  validation {
    condition     = length([for k in keys(var.worker_environment) : k if can(regex("(?i)(database_url|password|secret)", k))]) == 0
    error_message = "The database URL and other secrets come from Secrets Manager (database_url_secret_arn), never from worker_environment."
  }
}

variable "metrics_port" {
  description = "Port of the worker's Prometheus endpoint (S3VL_METRICS_PORT). Not opened to the network by this module."
  type        = number
  default     = 9464
}

variable "create_database_url_secret" {
  description = "Create an empty Secrets Manager secret for the worker's database URL; put its value with the AWS CLI (README) so the password never enters Terraform state. false = use database_url_secret_arn."
  type        = bool
  default     = true
}

variable "database_url_secret_arn" {
  description = "Existing Secrets Manager secret whose value is the worker's database URL (postgresql://user:password@host:port/db?sslmode=verify-full), used when create_database_url_secret is false. Encrypted with a key the module's execution role may decrypt (kms_key_arn)."
  type        = string
  default     = null
}

variable "reconcile_enabled" {
  description = "Run the reconcile job (s3vl reconcile --apply --json) on a schedule."
  type        = bool
  default     = true
}

variable "reconcile_schedule_expression" {
  description = "EventBridge Scheduler expression of the reconcile job (nightly by default)."
  type        = string
  default     = "cron(0 3 * * ? *)"
}

variable "reconcile_schedule_timezone" {
  description = "Time zone of reconcile_schedule_expression."
  type        = string
  default     = "UTC"
}

variable "reconcile_cpu" {
  description = "Fargate CPU units of the reconcile task."
  type        = number
  default     = 1024
}

variable "reconcile_memory" {
  description = "Fargate memory of the reconcile task in MiB."
  type        = number
  default     = 2048
}

# ---------------------------------------------------------------------------------------------------
# VPC endpoints
# ---------------------------------------------------------------------------------------------------

variable "create_vpc_endpoints" {
  description = "Create interface endpoints (S3 Vectors, Bedrock Runtime, Lambda, Secrets Manager, CloudWatch Logs, ECR) and an S3 gateway endpoint, so the Lambda, the worker and Aurora's aws_lambda calls need no NAT gateway."
  type        = bool
  default     = false
}

variable "vpc_endpoint_services" {
  description = "Interface endpoint services (the part after com.amazonaws.<region>.) created when create_vpc_endpoints is true. ECR api/dkr are needed for Fargate to pull the image without NAT."
  type        = list(string)
  default     = ["s3vectors", "bedrock-runtime", "lambda", "secretsmanager", "logs", "ecr.api", "ecr.dkr"]
}

variable "vpc_endpoint_route_table_ids" {
  description = "Route tables of the private subnets, for the S3 gateway endpoint (ECR image layers come from S3). Empty = no gateway endpoint."
  type        = list(string)
  default     = []
}

variable "vpc_endpoint_allowed_cidr_blocks" {
  description = "CIDR blocks allowed to reach the interface endpoints on 443. null = the VPC's primary CIDR."
  type        = list(string)
  default     = null
}

# ---------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------

variable "sync_names" {
  description = "Names of the syncs (s3vl.create_sync name): one lag, failed-rows and drift alarm per sync, and the lag that drives worker autoscaling. The worker and reconcile publish metrics in namespace s3vl with dimension Sync."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "Extra ARNs (SNS topics, ...) notified when an alarm fires or recovers, in addition to the module's topic."
  type        = list(string)
  default     = []
}

variable "create_alarm_topic" {
  description = "Create an encrypted SNS topic that every alarm notifies (subscribe to it yourself, or with alarm_email in the example)."
  type        = bool
  default     = true
}

variable "lag_alarm_threshold_seconds" {
  description = "Alarm when a sync's outbox lag (age of the oldest pending change) stays above this many seconds."
  type        = number
  default     = 900
}

variable "lag_alarm_treat_missing_data" {
  description = "How the lag alarm treats a missing metric: breaching (a stopped worker publishes nothing, so alarm) or notBreaching."
  type        = string
  default     = "breaching"

  validation {
    condition     = contains(["breaching", "notBreaching", "ignore", "missing"], var.lag_alarm_treat_missing_data)
    error_message = "lag_alarm_treat_missing_data must be breaching, notBreaching, ignore or missing."
  }
}

variable "failed_rows_alarm_threshold" {
  description = "Alarm when a sync has more failed outbox rows than this (rows that exhausted their retries; s3vl retry-failed)."
  type        = number
  default     = 0
}

variable "reconcile_drift_alarm_threshold" {
  description = "Alarm when the nightly reconcile finds more drifted keys (orphans + missing + stale) than this in a sync."
  type        = number
  default     = 0
}

variable "lambda_errors_alarm_threshold" {
  description = "Alarm when the query Lambda reports more errors than this in 5 minutes."
  type        = number
  default     = 0
}

variable "lambda_throttles_alarm_threshold" {
  description = "Alarm when the query Lambda is throttled more than this many times in 5 minutes (raise lambda_reserved_concurrency)."
  type        = number
  default     = 0
}
