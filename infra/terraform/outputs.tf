output "inbound_webhook_url" {
  description = "Paste into the Twilio WhatsApp sender as 'A message comes in' (HTTP POST)."
  value       = local.function_urls["inbound_webhook"]
}

output "status_webhook_url" {
  description = "Paste into the Twilio WhatsApp sender as the status callback URL (HTTP POST)."
  value       = local.function_urls["status_webhook"]
}

output "api_url" {
  description = "Operator REST API base URL (/v1/...); operators start a campaign now with POST /v1/campaigns/{id}/trigger."
  value       = local.function_urls["api"]
}

output "dashboard_url" {
  description = "The operator dashboard: sign in with an API token (README, Operator access)."
  value       = "${local.function_urls["api"]}/ui/"
}

output "trigger_campaign_url" {
  description = "Called only by Cloud Scheduler (internal ingress); to start a campaign now use the API's trigger route. `make smoke` forces a tick with `gcloud scheduler jobs run`."
  value       = local.function_urls["trigger_campaign"]
}

output "scheduler_job" {
  description = "The Cloud Scheduler job that ticks trigger_campaign (for `gcloud scheduler jobs run`, make smoke)."
  value       = google_cloud_scheduler_job.trigger_campaign.name
}

output "region" {
  description = "The region everything runs in (make smoke reads it)."
  value       = var.region
}

output "instance_connection_name" {
  description = "For `make migrate` (INSTANCE_CONNECTION_NAME)."
  value       = google_sql_database_instance.main.connection_name
}

output "db_user" {
  description = "For `make migrate` (DB_USER)."
  value       = google_sql_user.app.name
}

output "db_password_secret" {
  description = "Secret Manager secret holding DB_PASSWORD, for `make migrate`."
  value       = google_secret_manager_secret.app["DB_PASSWORD"].secret_id
}

output "operator_secrets" {
  description = "Secrets the operator fills with `gcloud secrets versions add` before the functions can start."
  value       = { for k in ["TWILIO_AUTH_TOKEN", "API_TOKENS"] : k => google_secret_manager_secret.app[k].secret_id }
}

output "dead_letter_subscription" {
  description = "Recipient pages fanout_recipients gave up on, kept for inspection and replay."
  value       = google_pubsub_subscription.dead_letter_hold.name
}

output "connection_budget" {
  description = "Worst-case PostgreSQL connections of all function instances vs. what max_connections leaves for them."
  value       = local.connection_budget
}
