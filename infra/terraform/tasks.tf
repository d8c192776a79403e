# send-messages (and send-messages-1, ... when the senders need more than one queue's 500/s; how many and
# their limits: send_queues.tf): one named task per message, dispatched to send_message with an OIDC token.

resource "google_cloud_tasks_queue" "send_messages" {
  count    = local.send_queue_count
  name     = local.send_queue_names[count.index]
  location = var.region

  rate_limits {
    # The senders' summed rate, at most 500/s a queue (Twilio accepts 80 msg/s per WhatsApp sender by
    # default). Each sender's and each campaign's own rate is enforced by the application's slot calendar
    # beneath it.
    max_dispatches_per_second = local.send_queue_rate
    # Sized against the database connection budget (variables.tf): each send holds one connection, and
    # the queues share tasks_max_concurrent_dispatches out between them.
    max_concurrent_dispatches = local.send_queue_concurrency
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

# The queue was a single resource before there could be several: the existing queue (and its tasks) is
# instance 0, not destroyed and created again.
moved {
  from = google_cloud_tasks_queue.send_messages
  to   = google_cloud_tasks_queue.send_messages[0]
}
