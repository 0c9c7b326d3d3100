# ---------------------------------------------------------------------------------------------------
# S3 Vectors: one vector bucket, one index per entry of var.indexes.
# ---------------------------------------------------------------------------------------------------

resource "aws_s3vectors_vector_bucket" "this" {
  vector_bucket_name = var.vector_bucket_name
  force_destroy      = var.vector_bucket_force_destroy

  # SSE-S3 unless SSE-KMS is asked for (module key or your own). Fixed at creation (forces a new bucket).
  encryption_configuration {
    sse_type    = local.vector_bucket_sse_kms ? "aws:kms" : "AES256"
    kms_key_arn = local.vector_bucket_kms_key_arn
  }

  tags = local.tags
}

resource "aws_s3vectors_index" "this" {
  for_each = var.indexes

  index_name         = each.key
  vector_bucket_name = aws_s3vectors_vector_bucket.this.vector_bucket_name

  data_type       = "float32"
  dimension       = each.value.dimension
  distance_metric = each.value.distance_metric

  # s3vl_hash (content hash) and s3vl_text (source text) are stored, never filtered on:
  # keeping them non-filterable keeps them out of the 2 KB filterable-metadata budget.
  metadata_configuration {
    non_filterable_metadata_keys = sort(tolist(setunion(toset(each.value.non_filterable_metadata_keys), local.reserved_non_filterable_keys)))
  }

  tags = local.tags
}
