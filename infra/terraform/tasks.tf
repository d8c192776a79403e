# send-messages: one named task per message, dispatched to send_message with an OIDC token.

resource "google_cloud_tasks_queue" "send_messages" {
  name     = local.queue_name
  location = var.region

  rate_limits {
    # The sender-wide cap (Twilio accepts 80 msg/s per WhatsApp sender by default). Each campaign's own
    # rate is enforced by the application's slot calendar beneath it.
    max_dispatches_per_second = var.sender_rate_limit_per_second
    # Sized against the database connection budget (variables.tf): each send holds one connection.
    max_concurrent_dispatches = var.tasks_max_concurrent_dispatches
  }

  # The application retries transient Twilio failures itself (1, 5 and 15 minutes, then FAILED) by
  # answering 2xx and scheduling a new task, so this config only covers a crashed or unreachable
  # send_message, or its database down (5xx, timeouts, 429 from a saturated instance). Such a task is
  # safe to retry: a send is claimed only just before its Twilio call. Retries come 10, 20, 40, 80, 160 s
  # and then every 300 s for about a day: "Cloud Tasks stops retrying only when maxAttempts and
  # maxRetryDuration are both satisfied" (https://cloud.google.com/tasks/docs/reference/rest/v2/RetryConfig),
  # and 300 attempts at that pace take a day (unlimited attempts, -1, would never satisfy the first). A
  # database outage of up to a day is ridden out by the queue; a task dropped after that (or lost any
  # other way) is re-created by the scheduler's sweeper once its message is overdue
  # (docs/architecture.md, "Self-healing").
  retry_config {
    max_attempts       = 300
    min_backoff        = "10s"
    max_backoff        = "300s"
    max_doublings      = 5
    max_retry_duration = "86400s"
  }

  stackdriver_logging_config {
    # Failed dispatches are logged by the function itself; 10% of queue logs is enough to see flow.
    sampling_ratio = 0.1
  }
}
