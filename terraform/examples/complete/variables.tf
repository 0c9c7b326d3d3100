variable "region" {
  description = "AWS region of the Aurora cluster and of everything s3vl deploys (S3 Vectors must be available there)."
  type        = string
  default     = "us-west-2"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "s3vl"
}

variable "tags" {
  description = "Tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default = {
    project = "s3vl"
  }
}

variable "vpc_id" {
  description = "VPC of the existing Aurora PostgreSQL cluster."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more AZs) for the Lambda, the worker tasks and the VPC endpoints."
  type        = list(string)
}

variable "private_route_table_ids" {
  description = "Route tables of the private subnets, for the S3 gateway endpoint (only used with create_vpc_endpoints)."
  type        = list(string)
  default     = []
}

variable "aurora_cluster_identifier" {
  description = "Identifier of the existing Aurora PostgreSQL cluster."
  type        = string
}

variable "aurora_security_group_id" {
  description = "Security group of the Aurora cluster."
  type        = string
}

variable "existing_rds_lambda_role_name" {
  description = "Name of the IAM role already associated with the cluster for the Lambda feature, if any (one per cluster). null = create one."
  type        = string
  default     = null
}

variable "vector_bucket_name" {
  description = "Name of the S3 Vectors bucket to create."
  type        = string
}

variable "vector_bucket_use_module_kms_key" {
  description = "Encrypt the vector bucket with SSE-KMS under the module's key instead of SSE-S3 (fixed at creation)."
  type        = bool
  default     = false
}

variable "indexes" {
  description = "Vector indexes by name (see the module's variable of the same name)."
  type = map(object({
    dimension                    = number
    distance_metric              = optional(string, "cosine")
    non_filterable_metadata_keys = optional(list(string), [])
    description                  = optional(string, "")
  }))
  default = {
    products = {
      dimension   = 1024
      description = "Products (amazon.titan-embed-text-v2:0, 1024 dimensions)"
    }
  }
}

variable "sync_names" {
  description = "Sync names declared with s3vl.create_sync, for the alarms and worker autoscaling."
  type        = list(string)
  default     = ["products"]
}

variable "image_tag" {
  description = "Tag of the worker image pushed to the ECR repository this example creates (README step 2)."
  type        = string
  default     = "0.1.0"
}

variable "create_vpc_endpoints" {
  description = "Create the interface endpoints so nothing needs a NAT gateway."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirm the subscription mail). null = no subscription."
  type        = string
  default     = null
}
