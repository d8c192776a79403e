# The six Cloud Functions (gen2), one per entry point in functions/main.py, each running as its own
# service account so a leaked identity can do only what that one function does.

resource "google_service_account" "function" {
  for_each     = local.entry_points
  account_id   = "${var.name_prefix}-fn-${replace(each.key, "_", "-")}"
  display_name = "Event Stream Engine ${each.key} function"
}

# Builds run as their own account: a new project's default compute account no longer has the roles.
# Google documents one role for it: "grant the Cloud Run Builder (roles/run.builder) role to the Cloud
# Build service account" (https://cloud.google.com/run/docs/configuring/services/build-service-account),
# which holds what a function build does: read the source object, push the image to Artifact Registry
# (gcf-artifacts) and write build logs.
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-function-build"
  display_name = "Event Stream Engine function builds"
}

resource "google_project_iam_member" "build" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = google_service_account.build.member
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
    # The machine-called functions are internal: only Cloud Scheduler, Pub/Sub and Cloud Tasks of this
    # project reach them (on their run.app URL), and only with an ID token of their one caller (below).
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

  # An instance must be able to read its secrets before it starts; a build needs its role, granted a
  # while ago (IAM changes take minutes to propagate: identities.tf).
  depends_on = [
    google_secret_manager_secret_iam_member.function_reads_secret,
    google_secret_manager_secret_version.db_password,
    time_sleep.iam_propagation,
  ]
}

# --- who may invoke what (gen2 functions are Cloud Run services: roles/run.invoker) ---
#
# Exactly the pairs of entry_points.json. allUsers on the two webhooks (Twilio cannot present Google
# credentials; both verify X-Twilio-Signature and fail closed) and on the api: an operator's browser
# cannot present an ID token either, so the dashboard's own sign-in and the API's bearer tokens are its
# gate (README, "Operator access"). Each machine-called function: its one caller's service account.

resource "google_cloud_run_service_iam_member" "invoker" {
  #checkov:skip=CKV_GCP_102:allUsers only where entry_points.json says so: the webhooks (Twilio signatures, fail closed) and the api (API tokens and the dashboard's sign-in, fail closed); tests/infra asserts no machine-called function is ever public.
  for_each = local.invoker_bindings
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

check "function_urls_match_prediction" {
  assert {
    condition     = alltrue([for ep, f in google_cloudfunctions2_function.fn : f.url == local.cloudfunction_urls[ep]])
    error_message = "A function's cloudfunctions.net URL differs from the https://REGION-PROJECT.cloudfunctions.net/NAME form the functions were told; Twilio signatures and ID-token audiences would not match. Outputs show the real URLs."
  }
}
