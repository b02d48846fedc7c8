# Function source: functions/ (Python files and requirements.txt) plus the checked Apple root,
# zipped at plan time and uploaded under a name derived from the archive's SHA-256, so any code or
# certificate change is a new object and redeploys the three functions.

locals {
  functions_dir = "${path.module}/../functions"

  # Runtime files only: no caches, no virtualenvs or other dot-directories. html, css, js and svg
  # are the console's page and files (functions/refundguard/console/static/).
  function_source_files = sort([
    for f in fileset(local.functions_dir, "**/*.{py,txt,json,html,css,js,svg}") : f
    if !strcontains(f, "__pycache__") && !startswith(f, ".") && !strcontains(f, "/.")
  ])
}

data "archive_file" "function_source" {
  type             = "zip"
  output_path      = "${path.module}/build/function-source.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = local.function_source_files
    content {
      filename = source.value
      content  = file("${local.functions_dir}/${source.value}")
    }
  }

  source {
    filename = local.apple_root_ca_g3_path
    content  = local.apple_root_ca_g3_pem
  }
}

resource "google_storage_bucket" "function_source" {
  # checkov:skip=CKV_GCP_62: reason: the bucket only holds deployment archives written by Terraform; Cloud Audit Logs record who changes it, and a second access-log bucket would add cost without a reader.
  name     = "${var.project_id}-${var.name_prefix}-source"
  project  = var.project_id
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Old archives are only needed to roll back; keep a few, drop the rest.
  lifecycle_rule {
    condition {
      num_newer_versions = 5
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "function_source" {
  name         = "function-source-${data.archive_file.function_source.output_sha256}.zip"
  bucket       = google_storage_bucket.function_source.name
  source       = data.archive_file.function_source.output_path
  content_type = "application/zip"
}
