terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.24: first release with aws_s3vectors_vector_bucket / aws_s3vectors_index.
      version = ">= 6.24"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}
