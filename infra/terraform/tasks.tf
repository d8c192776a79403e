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
  # send_message (5xx, timeouts, 429 from a saturated instance). Such a task is safe to retry: the
  # message row is claimed before Twilio is called. 10 attempts, backoff 10 s doubling 4 times and then
  # growing by 160 s (10, 20, 40, 80, 160, 320, 480, 640, 800 s), ride out about 40 minutes of outage
  # before the queue gives up.
  retry_config {
    max_attempts       = 10
    min_backoff        = "10s"
    max_backoff        = "900s"
    max_doublings      = 4
    max_retry_duration = "0s"
  }

  stackdriver_logging_config {
    # Failed dispatches are logged by the function itself; 10% of queue logs is enough to see flow.
    sampling_ratio = 0.1
  }
}
