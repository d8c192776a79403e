# Secret Manager holds every value the Settings object declares as SecretStr (shared/config.py), keyed
# by the environment variable the functions receive it as. DATABASE_URL is local-only (production uses
# INSTANCE_CONNECTION_NAME), so it has no secret here.
#
# Terraform creates the Twilio and API token secrets empty and never sees their values, so they stay
# out of state; the operator adds versions with gcloud (README.md, operator guide). The database password is
# generated here because Cloud SQL needs it too.

locals {
  secrets = {
    TWILIO_AUTH_TOKEN = "${var.name_prefix}-twilio-auth-token"
    API_TOKENS        = "${var.name_prefix}-api-tokens"
    DB_PASSWORD       = "${var.name_prefix}-db-password"
  }

  # One binding per (function, secret it reads): no function can read another's secrets.
  secret_readers = merge([
    for ep, names in local.function_secrets : { for k in names : "${ep}/${k}" => { function = ep, secret = k } }
  ]...)
}

resource "google_secret_manager_secret" "app" {
  for_each  = local.secrets
  secret_id = each.value

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "db_password" {
  secret      = google_secret_manager_secret.app["DB_PASSWORD"].id
  secret_data = random_password.db.result
}

resource "google_secret_manager_secret_iam_member" "function_reads_secret" {
  for_each  = local.secret_readers
  secret_id = google_secret_manager_secret.app[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value.function].member
}
