output "inbound_webhook_url" {
  description = "Paste into the Twilio WhatsApp sender as 'A message comes in' (HTTP POST)."
  value       = google_cloudfunctions2_function.fn["inbound_webhook"].url
}

output "status_webhook_url" {
  description = "Paste into the Twilio WhatsApp sender as the status callback URL (HTTP POST)."
  value       = google_cloudfunctions2_function.fn["status_webhook"].url
}

output "api_url" {
  description = "Operator REST API base URL (/v1/...)."
  value       = google_cloudfunctions2_function.fn["api"].url
}

output "trigger_campaign_url" {
  description = "Called every minute by Cloud Scheduler; operators with run.invoker may call it too."
  value       = google_cloudfunctions2_function.fn["trigger_campaign"].url
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
