# One source bundle for all six functions, built from an allowlist so only runtime code ships (no tests,
# emulators, migrations or local state) and any change to a shipped file changes the object name, which
# redeploys every function. infra/deploy/gcloud_deploy.sh stages the same allowlist.

locals {
  repo_root = abspath("${path.module}/../..")

  # bundle path => repository path
  bundle_fixed_files = {
    "main.py"          = "functions/main.py"
    "requirements.txt" = "requirements.txt"
  }
  bundle_globs = ["shared/**/*"]

  bundle_package_files = toset([
    for f in flatten([for g in local.bundle_globs : tolist(fileset(local.repo_root, g))]) : f
    if !strcontains(f, "__pycache__/") && !endswith(f, ".pyc")
  ])

  bundle_files = merge(
    local.bundle_fixed_files,
    { for f in local.bundle_package_files : f => f },
  )
}

data "archive_file" "bundle" {
  type        = "zip"
  output_path = "${path.module}/.build/functions-bundle.zip"

  dynamic "source" {
    for_each = local.bundle_files
    content {
      filename = source.key
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only build inputs written by terraform; Cloud Audit Logs already record who reads or writes them.
  name                        = "${var.project_id}-${var.name_prefix}-function-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  # Bundles are content-addressed and tiny; expire old ones. A rollback re-applies an older commit, which
  # rebuilds and re-uploads its bundle, so nothing here is the only copy of anything.
  lifecycle_rule {
    condition {
      age = 180
    }
    action {
      type = "Delete"
    }
  }

  # With versioning on, the rule above only makes objects noncurrent; this one removes them.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "bundle" {
  # The content hash in the name is what makes a code change roll out: the functions see a new object.
  name   = "functions-bundle-${data.archive_file.bundle.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.bundle.output_path
}
