locals {
  # The entry points of functions/main.py and how each is reached: trigger (http, or pubsub: a CloudEvent
  # function fed by the push subscription in pubsub.tf), ingress, and who holds roles/run.invoker
  # (allUsers, or keys of local.identities). One table, entry_points.json, read here, by
  # infra/deploy/gcloud_deploy.sh and by the local front-end emulator, so the stack that tests run on
  # admits exactly the callers production admits. docs/architecture.md ("Google's front end") has why.
  entry_points = jsondecode(file("${path.module}/entry_points.json")).entry_points

  # The machine callers' identities (identities.tf), by the keys entry_points.json uses.
  identities = {
    scheduler     = google_service_account.scheduler
    pubsub_push   = google_service_account.pubsub_push
    tasks_invoker = google_service_account.tasks_invoker
  }

  function_names = { for ep in keys(local.entry_points) : ep => "${var.name_prefix}-${replace(ep, "_", "-")}" }

  # Two URLs reach each function, both predictable before it exists, so every function can be told every
  # URL (Twilio signatures and ID-token audiences are checked against them) without a dependency cycle:
  # - the deterministic run.app URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app
  #   (https://cloud.google.com/run/docs/triggering/https-request#deterministic);
  # - the Cloud Functions URL, https://REGION-PROJECT.cloudfunctions.net/NAME.
  # Internal ingress admits Cloud Scheduler, Cloud Tasks and Pub/Sub "if they're using the default run.app
  # URL and not a custom domain" (https://cloud.google.com/run/docs/securing/ingress), so the machine-called
  # functions are always called, and their tokens minted, on run.app. Both URLs are accepted audiences
  # (https://cloud.google.com/run/docs/troubleshooting, "the URL of the receiving service using the format
  # https://SERVICE.run.app or https://REGION-PROJECT_ID.cloudfunctions.net/FUNCTION"), so for the public
  # functions the docs leave the choice open: var.public_url_form.
  run_app_urls       = { for ep, name in local.function_names : ep => "https://${name}-${data.google_project.this.number}.${var.region}.run.app" }
  cloudfunction_urls = { for ep, name in local.function_names : ep => "https://${var.region}-${var.project_id}.cloudfunctions.net/${name}" }
  function_urls = {
    for ep, e in local.entry_points : ep => (
      e.ingress == "ALLOW_INTERNAL_ONLY" || var.public_url_form == "run_app"
      ? local.run_app_urls[ep] : local.cloudfunction_urls[ep]
    )
  }

  # Every (function, invoker) pair of the table: one roles/run.invoker binding each (functions.tf).
  invoker_bindings = merge([
    for ep, e in local.entry_points : {
      for who in e.invokers : "${ep}/${who}" => {
        function = ep
        member   = who == "allUsers" ? "allUsers" : local.identities[who].member
      }
    }
  ]...)

  topic_name = "campaign-recipients"

  # Which secrets each function reads (see secrets.tf). All six touch PostgreSQL; the Twilio auth token
  # signs and verifies webhooks and authenticates sends and the sweeper's lookups; API tokens guard the
  # operator API.
  function_secrets = {
    inbound_webhook = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
    status_webhook  = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
    # The api also sends a template's test send through Twilio.
    api = ["DB_PASSWORD", "API_TOKENS", "TWILIO_AUTH_TOKEN"]
    # The tick's sweeper reads Twilio's record of messages (reconciliation).
    trigger_campaign  = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
    fanout_recipients = ["DB_PASSWORD"]
    send_message      = ["DB_PASSWORD", "TWILIO_AUTH_TOKEN"]
  }

  # The identities whose ID tokens each invoker-restricted function accepts (OIDC_ALLOWED_EMAILS): its
  # invokers in the table, so the app checks the same callers the front end admits.
  function_callers = {
    for ep, e in local.entry_points : ep => join(",", [for who in e.invokers : local.identities[who].email])
    if !contains(e.invokers, "allUsers")
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
    TASKS_QUEUE                  = google_cloud_tasks_queue.send_messages[0].name
    TASKS_QUEUE_COUNT            = tostring(local.send_queue_count)
    TASKS_SERVICE_ACCOUNT_EMAIL  = google_service_account.tasks_invoker.email
    INBOUND_WEBHOOK_URL          = local.function_urls["inbound_webhook"]
    STATUS_WEBHOOK_URL           = local.function_urls["status_webhook"]
    API_URL                      = local.function_urls["api"]
    TRIGGER_CAMPAIGN_URL         = local.function_urls["trigger_campaign"]
    SEND_MESSAGE_URL             = local.function_urls["send_message"]
    FANOUT_RECIPIENTS_URL        = local.function_urls["fanout_recipients"]
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
