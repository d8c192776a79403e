# The six Cloud Functions (gen2), one per entry point in functions/main.py, each running as its own
# service account so a leaked identity can do only what that one function does.

resource "google_service_account" "function" {
  for_each     = local.entry_points
  account_id   = "${var.name_prefix}-fn-${replace(each.key, "_", "-")}"
  display_name = "Event Stream Engine ${each.key} function"
}

# Builds run as their own account: a new project's default compute account no longer has the roles.
# It reads the bundle, writes the image to Artifact Registry (gcf-artifacts) and writes build logs.
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-function-build"
  display_name = "Event Stream Engine function builds"
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])
  project  = var.project_id
  role     = each.key
  member   = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:Twilio calls the two webhooks and operators the api from the internet; the machine-called functions are ALLOW_INTERNAL_ONLY (locals.tf, asserted by tests/infra).
  for_each = var.functions
  name     = local.function_names[each.key]
  location = var.region

  build_config {
    runtime         = "python311"
    entry_point     = each.key
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.bundle.name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    max_instance_request_concurrency = each.value.concurrency
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    service_account_email            = google_service_account.function[each.key].email
    all_traffic_on_latest_revision   = true
    # Only the two webhooks grant allUsers the invoker role (below); every other function demands a
    # Google-signed identity token from an allowed account, and the machine-called ones are internal.
    ingress_settings      = local.entry_points[each.key].ingress
    environment_variables = local.function_env[each.key]

    dynamic "secret_environment_variables" {
      for_each = toset(local.function_secrets[each.key])
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = google_secret_manager_secret.app[secret_environment_variables.key].secret_id
        # New instances pick up a rotated secret; see the README's operator guide for forcing a new revision.
        version = "latest"
      }
    }
  }

  # An instance must be able to read its secrets before it starts.
  depends_on = [
    google_secret_manager_secret_iam_member.function_reads_secret,
    google_secret_manager_secret_version.db_password,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_source,
  ]
}

# --- who may invoke what (gen2 functions are Cloud Run services: roles/run.invoker) ---

resource "google_cloud_run_service_iam_member" "public_webhook" {
  #checkov:skip=CKV_GCP_102:Twilio cannot present Google credentials; both webhooks verify X-Twilio-Signature and fail closed (403, nothing written).
  for_each = { for ep, e in local.entry_points : ep => e if e.public }
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

locals {
  # Each machine-called function trusts exactly one caller identity.
  machine_invokers = {
    "trigger_campaign/scheduler"    = { function = "trigger_campaign", member = google_service_account.scheduler.member }
    "fanout_recipients/pubsub_push" = { function = "fanout_recipients", member = google_service_account.pubsub_push.member }
    "send_message/tasks_invoker"    = { function = "send_message", member = google_service_account.tasks_invoker.member }
  }
  api_invokers = { for m in var.api_invoker_members : "api/${m}" => { function = "api", member = m } }
}

resource "google_cloud_run_service_iam_member" "private_invoker" {
  for_each = merge(local.machine_invokers, local.api_invokers)
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

check "function_urls_match_prediction" {
  assert {
    condition     = alltrue([for ep, f in google_cloudfunctions2_function.fn : f.url == local.function_urls[ep]])
    error_message = "A function URL differs from the https://REGION-PROJECT.cloudfunctions.net/NAME form the functions were told; Twilio signatures and OIDC audiences would not match. Outputs show the real URLs."
  }
}
