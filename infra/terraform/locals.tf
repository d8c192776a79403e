locals {
  # The entry points of functions/main.py and how each is reached. Trigger and callers are code, not
  # configuration, so they live here; sizing lives in var.functions.
  #   trigger http   : an HTTPS function, invoked by its callers.
  #   trigger pubsub : a CloudEvent function fed by the campaign-recipients push subscription (pubsub.tf).
  #   public         : allUsers may invoke it (Twilio cannot present Google credentials).
  #   ingress        : functions only Google's own services call (Scheduler, Pub/Sub, Cloud Tasks in this
  #                    project count as internal traffic) are unreachable from the internet altogether.
  entry_points = {
    inbound_webhook   = { trigger = "http", public = true, ingress = "ALLOW_ALL" }
    status_webhook    = { trigger = "http", public = true, ingress = "ALLOW_ALL" }
    api               = { trigger = "http", public = false, ingress = "ALLOW_ALL" }
    trigger_campaign  = { trigger = "http", public = false, ingress = "ALLOW_INTERNAL_ONLY" }
    fanout_recipients = { trigger = "pubsub", public = false, ingress = "ALLOW_INTERNAL_ONLY" }
    send_message      = { trigger = "http", public = false, ingress = "ALLOW_INTERNAL_ONLY" }
  }

  function_names = { for ep in keys(local.entry_points) : ep => "${var.name_prefix}-${replace(ep, "_", "-")}" }

  # Gen2 function URLs are deterministic, https://REGION-PROJECT.cloudfunctions.net/NAME, which lets every
  # function know every URL (Twilio signatures and OIDC audiences are checked against them) without a
  # dependency cycle between the functions. check.function_urls_match_prediction guards the assumption.
  function_urls = { for ep, name in local.function_names : ep => "https://${var.region}-${var.project_id}.cloudfunctions.net/${name}" }

  topic_name = "campaign-recipients"
  queue_name = "send-messages"

  # Which secrets each function reads (see secrets.tf). All six touch PostgreSQL; the Twilio auth token
  # signs and verifies webhooks and authenticates sends; API tokens guard the operator API.
  function_secrets = {
    inbound_webhook   = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
    status_webhook    = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
    api               = ["DB_PASSWORD", "API_TOKENS"]
    trigger_campaign  = ["DB_PASSWORD"]
    fanout_recipients = ["DB_PASSWORD"]
    send_message      = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
  }

  # The identity whose OIDC token each private, machine-called function accepts (OIDC_ALLOWED_EMAILS).
  function_callers = {
    trigger_campaign  = google_service_account.scheduler.email
    fanout_recipients = google_service_account.pubsub_push.email
    send_message      = google_service_account.tasks_invoker.email
  }

  # Settings every function reads (shared/config.py); names match the Settings fields.
  common_env = {
    GCP_PROJECT                  = var.project_id
    GCP_REGION                   = var.region
    LOG_LEVEL                    = var.log_level
    DEFAULT_REGION               = var.default_phone_region
    INSTANCE_CONNECTION_NAME     = google_sql_database_instance.main.connection_name
    DB_USER                      = google_sql_user.app.name
    DB_NAME                      = google_sql_database.app.name
    DB_IAM_AUTH                  = "false"
    DB_IP_TYPE                   = "public"
    DB_POOL_SIZE                 = tostring(var.db_pool_size)
    DB_MAX_OVERFLOW              = tostring(var.db_max_overflow)
    SENDER_RATE_LIMIT_PER_SECOND = tostring(var.sender_rate_limit_per_second)
    TWILIO_ACCOUNT_SID           = var.twilio_account_sid
    PUBSUB_TOPIC                 = google_pubsub_topic.campaign_recipients.name
    TASKS_QUEUE                  = google_cloud_tasks_queue.send_messages.name
    TASKS_SERVICE_ACCOUNT_EMAIL  = google_service_account.tasks_invoker.email
    INBOUND_WEBHOOK_URL          = local.function_urls["inbound_webhook"]
    STATUS_WEBHOOK_URL           = local.function_urls["status_webhook"]
    API_URL                      = local.function_urls["api"]
    TRIGGER_CAMPAIGN_URL         = local.function_urls["trigger_campaign"]
    SEND_MESSAGE_URL             = local.function_urls["send_message"]
  }

  # Twilio sends from a single sender or through a Messaging Service; only the configured one is set.
  sender_env = merge(
    var.twilio_from == null ? {} : { TWILIO_FROM = var.twilio_from },
    var.twilio_messaging_service_sid == null ? {} : { TWILIO_MESSAGING_SERVICE_SID = var.twilio_messaging_service_sid },
  )

  function_env = {
    for ep, sizing in var.functions : ep => merge(
      local.common_env,
      local.sender_env,
      # functions-framework's gunicorn runs THREADS threads; match the concurrency Cloud Run sends.
      { THREADS = tostring(sizing.concurrency) },
      contains(keys(local.function_callers), ep) ? { OIDC_ALLOWED_EMAILS = local.function_callers[ep] } : {},
    )
  }

  connection_budget = {
    per_instance = var.db_pool_size + var.db_max_overflow
    worst_case   = sum([for f in values(var.functions) : f.max_instances]) * (var.db_pool_size + var.db_max_overflow)
    available    = var.db_max_connections - var.db_reserved_connections
  }
}
