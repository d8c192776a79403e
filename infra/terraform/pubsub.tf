# campaign-recipients carries one message per page of a frozen audience. fanout_recipients receives it
# through a push subscription we own, rather than an Eventarc trigger, because Eventarc's subscription
# cannot be given a dead-letter policy from terraform. The push envelope is the one the local Pub/Sub
# emulator delivers, which functions-framework turns into the same CloudEvent in both places.

resource "google_pubsub_topic" "campaign_recipients" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; pages hold phone numbers already stored in Cloud SQL under the same default encryption.
  name = local.topic_name

  # Pages older than fanout_page_max_age (6 h) are dropped by the app anyway.
  message_retention_duration = "86400s"
}

resource "google_pubsub_topic" "campaign_recipients_dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; dead-lettered pages hold the same phone numbers as campaign-recipients, already in Cloud SQL.
  name = "${local.topic_name}-dead-letter"
}

# Keeps dead-lettered pages for an operator to inspect and replay: a topic alone would drop them.
resource "google_pubsub_subscription" "dead_letter_hold" {
  name                       = "${local.topic_name}-dead-letter-hold"
  topic                      = google_pubsub_topic.campaign_recipients_dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "fanout_push" {
  name  = "${local.topic_name}-fanout"
  topic = google_pubsub_topic.campaign_recipients.id

  # Also the push request timeout: Pub/Sub must not redeliver a page the function is still writing.
  ack_deadline_seconds       = var.functions["fanout_recipients"].timeout
  message_retention_duration = "86400s"

  push_config {
    # The run.app URL: internal ingress admits Pub/Sub only on it (locals.tf). The topic path in the URL
    # lets functions-framework name the CloudEvent's source correctly.
    push_endpoint = "${local.function_urls["fanout_recipients"]}/projects/${var.project_id}/topics/${local.topic_name}"
    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.function_urls["fanout_recipients"]
    }
  }

  # Retries on: a non-2xx (fanout raises on a transient failure) is redelivered with backoff.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # A page that fails this many times is parked on the dead-letter topic instead of looping forever.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.campaign_recipients_dead_letter.id
    max_delivery_attempts = var.fanout_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloudfunctions2_function.fn, google_cloud_run_service_iam_member.invoker]
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic and
# acknowledge on the source subscription, or failed pages are silently retried forever.
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.campaign_recipients_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  subscription = google_pubsub_subscription.fanout_push.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
