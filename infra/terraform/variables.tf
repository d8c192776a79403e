# Every input of the deployment. Sizing rules that span several variables (the database connection
# budget, the queue's concurrency) are validated here, so `terraform plan` refuses a configuration that
# would exhaust PostgreSQL's connections under load instead of failing in production at peak.

# --- where ---

variable "project_id" {
  type        = string
  description = "Google Cloud project ID to deploy into."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project ID: 6-30 lowercase letters, digits or hyphens."
  }
}

variable "region" {
  type        = string
  default     = "us-central1"
  description = "Region for the functions, Cloud SQL, the Cloud Tasks queue and the scheduler job."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  type        = string
  default     = "ese"
  description = "Prefix of every named resource (functions, service accounts, secrets, SQL instance)."

  validation {
    # Service account IDs are at most 30 characters and the longest suffix is "-fn-fanout-recipients"; the
    # deterministic run.app URL needs SERVICE-PROJECT_NUMBER within 63 characters, which this keeps too.
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.name_prefix))
    error_message = "name_prefix must be 2-8 lowercase letters or digits, starting with a letter."
  }
}

# --- Twilio ---

variable "twilio_account_sid" {
  type        = string
  description = "Twilio Account SID (not a secret; the auth token goes into Secret Manager, see the README's operator guide)."

  validation {
    condition     = can(regex("^AC[0-9a-f]{32}$", var.twilio_account_sid))
    error_message = "twilio_account_sid must look like AC followed by 32 hex digits."
  }
}

variable "twilio_from" {
  type        = string
  default     = null
  description = "WhatsApp sender, e.g. whatsapp:+14155238886. Set this or twilio_messaging_service_sid."

  validation {
    condition     = var.twilio_from == null || can(regex("^(whatsapp:)?\\+[1-9][0-9]{6,14}$", var.twilio_from))
    error_message = "twilio_from must be an E.164 number, optionally prefixed with whatsapp:."
  }
}

variable "twilio_messaging_service_sid" {
  type        = string
  default     = null
  description = "Twilio Messaging Service SID (MG...) to send through instead of a single sender."

  validation {
    condition     = var.twilio_messaging_service_sid == null || can(regex("^MG[0-9a-f]{32}$", var.twilio_messaging_service_sid))
    error_message = "twilio_messaging_service_sid must look like MG followed by 32 hex digits."
  }

  validation {
    condition     = var.twilio_messaging_service_sid != null || var.twilio_from != null
    error_message = "Set twilio_from or twilio_messaging_service_sid: messages need a sender."
  }
}

# --- application defaults ---

variable "default_phone_region" {
  type        = string
  default     = "US"
  description = "ISO country code used to read phone numbers written without a leading +."

  validation {
    condition     = can(regex("^[A-Z]{2}$", var.default_phone_region))
    error_message = "default_phone_region must be a two-letter ISO 3166 country code in capitals."
  }
}

variable "log_level" {
  type        = string
  default     = "INFO"
  description = "Application log level."

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be one of DEBUG, INFO, WARNING, ERROR."
  }
}

variable "public_url_form" {
  type        = string
  default     = "run_app"
  description = <<-EOT
    Which URL the public functions (the two webhooks, the api) are known by: "run_app", the deterministic
    https://SERVICE-PROJECT_NUMBER.REGION.run.app, or "cloudfunctions", https://REGION-PROJECT.cloudfunctions.net/NAME.
    Google accepts both as ID-token audiences and both reach a public function; Twilio signs the URL it was
    given, so keep this unchanged once the sender's webhooks are set. The machine-called functions always
    use run.app: internal ingress admits Scheduler, Pub/Sub and Cloud Tasks only there.
  EOT

  validation {
    condition     = contains(["run_app", "cloudfunctions"], var.public_url_form)
    error_message = "public_url_form must be run_app or cloudfunctions."
  }
}

# --- functions ---

variable "functions" {
  type = map(object({
    memory        = string
    cpu           = string
    timeout       = number
    concurrency   = number
    min_instances = number
    max_instances = number
  }))
  description = <<-EOT
    Sizing per entry point: memory (e.g. 512Mi), cpu (vCPUs, "1" or more when concurrency > 1), request
    timeout in seconds, concurrent requests per instance (also the gunicorn thread count), and the
    instance range. Every max_instances counts against the database connection budget (db_max_connections).
  EOT
  default = {
    # Twilio waits about 15 s for a webhook: a warm instance keeps cold starts out of that budget.
    inbound_webhook = { memory = "512Mi", cpu = "1", timeout = 15, concurrency = 4, min_instances = 1, max_instances = 2 }
    # Three to four callbacks per message at 80 msg/s is ~300 short requests/s.
    status_webhook = { memory = "512Mi", cpu = "1", timeout = 15, concurrency = 6, min_instances = 1, max_instances = 3 }
    api            = { memory = "512Mi", cpu = "1", timeout = 300, concurrency = 4, min_instances = 0, max_instances = 2 }
    # Ticks once a minute; a second instance only covers an operator's manual call during a tick.
    trigger_campaign = { memory = "512Mi", cpu = "1", timeout = 300, concurrency = 1, min_instances = 0, max_instances = 2 }
    # One page (500 recipients) per request: rows plus one Cloud Task each. Its timeout is also the
    # push subscription's ack deadline, so it must stay at or under Pub/Sub's 600 s.
    fanout_recipients = { memory = "1Gi", cpu = "1", timeout = 540, concurrency = 2, min_instances = 0, max_instances = 3 }
    # 80 msg/s at ~0.4 s per Twilio call is ~32 requests in flight. A send also waits for its rate slot
    # holding its request (not a database connection): 12 per instance keep slots reserved ahead, so a
    # short stall in admission does not leave a slot unused (make bench: rate fidelity, send).
    send_message = { memory = "512Mi", cpu = "1", timeout = 60, concurrency = 12, min_instances = 0, max_instances = 8 }
  }

  validation {
    condition = (
      length(var.functions) == 6 &&
      length(setsubtract(keys(var.functions), ["inbound_webhook", "status_webhook", "api", "trigger_campaign", "fanout_recipients", "send_message"])) == 0
    )
    error_message = "functions must size exactly the six entry points: inbound_webhook, status_webhook, api, trigger_campaign, fanout_recipients, send_message."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.min_instances >= 0 && f.max_instances >= 1 && f.min_instances <= f.max_instances])
    error_message = "Each function needs 0 <= min_instances <= max_instances and max_instances >= 1."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.concurrency >= 1 && f.concurrency <= 1000 && (f.concurrency == 1 || tonumber(f.cpu) >= 1)])
    error_message = "concurrency must be 1-1000, and Cloud Functions allows more than 1 only with cpu >= 1."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.timeout >= 1 && f.timeout <= 3600 && can(regex("^[0-9]+(Mi|Gi)$", f.memory))])
    error_message = "timeout must be 1-3600 seconds and memory a size such as 512Mi or 1Gi."
  }

  validation {
    condition     = var.functions["fanout_recipients"].timeout >= 10 && var.functions["fanout_recipients"].timeout <= 600
    error_message = "fanout_recipients.timeout is also the push subscription's ack deadline: 10-600 seconds."
  }
}

# --- database and its connection budget ---

variable "db_tier" {
  type        = string
  default     = "db-custom-2-7680"
  description = "Cloud SQL machine tier. 2 vCPU / 7.5 GB comfortably serves db_max_connections = 200."
}

variable "db_availability_type" {
  type        = string
  default     = "REGIONAL"
  description = "REGIONAL (a standby in another zone, automatic failover) or ZONAL (cheaper, for staging)."

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.db_availability_type)
    error_message = "db_availability_type must be REGIONAL or ZONAL."
  }
}

variable "db_deletion_protection" {
  type        = bool
  default     = true
  description = "Refuse to delete the Cloud SQL instance (both in terraform and in the Cloud SQL API)."
}

variable "db_pool_size" {
  type        = number
  default     = 4
  description = "SQLAlchemy pool size per function instance (DB_POOL_SIZE)."

  validation {
    condition     = var.db_pool_size >= 1 && var.db_pool_size <= 50
    error_message = "db_pool_size must be 1-50 (the application refuses other values)."
  }
}

variable "db_max_overflow" {
  type        = number
  default     = 2
  description = "Connections an instance may open beyond the pool under a burst (DB_MAX_OVERFLOW)."

  validation {
    condition     = var.db_max_overflow >= 0 && var.db_max_overflow <= 50
    error_message = "db_max_overflow must be 0-50 (the application refuses other values)."
  }
}

variable "db_reserved_connections" {
  type        = number
  default     = 20
  description = "Connections kept free for migrations, operators' psql sessions and Cloud SQL's own agents."

  validation {
    condition     = var.db_reserved_connections >= 5
    error_message = "db_reserved_connections must be at least 5: Cloud SQL's agents and a migration need some."
  }
}

variable "db_max_connections" {
  type        = number
  default     = 200
  description = <<-EOT
    PostgreSQL max_connections (a Cloud SQL database flag). The connection budget: every function
    instance can hold db_pool_size + db_max_overflow connections, so
    sum(max_instances) x (db_pool_size + db_max_overflow) must be below db_max_connections - db_reserved_connections.
  EOT

  validation {
    condition = (
      sum([for f in values(var.functions) : f.max_instances]) * (var.db_pool_size + var.db_max_overflow)
      < var.db_max_connections - var.db_reserved_connections
    )
    error_message = "Connection budget exceeded: sum(functions[*].max_instances) x (db_pool_size + db_max_overflow) must be below db_max_connections - db_reserved_connections. Lower max_instances or the pool, or raise db_max_connections (and db_tier)."
  }
}

# --- sending ---

variable "sender_rate_limit_per_second" {
  type        = number
  default     = 80
  description = "Messages per second the WhatsApp sender (twilio_from or the Messaging Service) accepts (Twilio's default is 80); the application never sends faster from it, and the send queues are sized for it plus var.senders."

  validation {
    # 500/s is Cloud Tasks' ceiling per queue.
    condition     = var.sender_rate_limit_per_second >= 1 && var.sender_rate_limit_per_second <= 500
    error_message = "sender_rate_limit_per_second must be 1-500 (Cloud Tasks dispatches at most 500/s per queue)."
  }
}

variable "senders" {
  type = list(object({
    address               = string
    rate_limit_per_second = number
    pool                  = string
  }))
  default     = []
  description = <<-EOT
    The further WhatsApp senders operators register for sender pools, besides the configured one: each
    one's address ("whatsapp:+E164"), the messages per second Twilio accepts from it, and the pool it
    belongs to. Terraform only sizes the send queues from them: the queues together must be able to
    dispatch sender_rate_limit_per_second plus every sender's rate, and one queue dispatches at most
    500/s, so ceil(total / 500) queues are created (send_queues.tf). The exact per-sender ceilings are
    enforced by the application's slot calendar, not by the queues.
  EOT

  validation {
    condition     = alltrue([for s in var.senders : s.rate_limit_per_second >= 1 && startswith(s.address, "whatsapp:+") && s.pool != ""])
    error_message = "Each of senders needs an address \"whatsapp:+E164\", a rate_limit_per_second of at least 1 and a pool."
  }

  validation {
    condition     = length(distinct([for s in var.senders : s.address])) == length(var.senders)
    error_message = "senders lists an address more than once."
  }

  validation {
    # TASKS_QUEUE_COUNT is at most 64 (shared/config.py): 64 queues x 500/s.
    condition     = var.sender_rate_limit_per_second + sum(concat([0], [for s in var.senders : s.rate_limit_per_second])) <= 64 * 500
    error_message = "The senders' rates add up past 64 send queues x 500/s (32,000 messages per second)."
  }
}

variable "tasks_max_concurrent_dispatches" {
  type        = number
  default     = 40
  description = "Sends in flight at once. Each holds a database connection in send_message, so it is bounded by that function's capacity."

  validation {
    # More in flight than send_message can hold would be answered 429/503 and burn retry attempts.
    condition = var.tasks_max_concurrent_dispatches >= 1 && var.tasks_max_concurrent_dispatches <= (
      var.functions["send_message"].max_instances *
      min(var.functions["send_message"].concurrency, var.db_pool_size + var.db_max_overflow)
    )
    error_message = "tasks_max_concurrent_dispatches must be at least 1 and at most send_message.max_instances x min(send_message.concurrency, db_pool_size + db_max_overflow)."
  }
}

variable "fanout_max_delivery_attempts" {
  type        = number
  default     = 10
  description = "Deliveries of one recipients page to fanout_recipients before it is dead-lettered."

  validation {
    condition     = var.fanout_max_delivery_attempts >= 5 && var.fanout_max_delivery_attempts <= 100
    error_message = "fanout_max_delivery_attempts must be 5-100 (Pub/Sub's limits)."
  }
}
