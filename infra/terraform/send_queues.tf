# How many send queues there are, their names and each one's limits. Only variables feed these locals
# (no resource), so tests/infra/test_terraform_tools.py evaluates them with terraform itself on
# variables.tf and this file alone.
locals {
  queue_name = "send-messages"

  # One Cloud Tasks queue dispatches at most 500 tasks a second: RateLimits.max_dispatches_per_second,
  # "The maximum allowed value is 500" (https://cloud.google.com/php/docs/reference/cloud-tasks/1.14.4/V2.RateLimits,
  # generated from the v2 API's RateLimits message). A pool of senders can need more, so sends are spread
  # over several queues; the exact per-sender ceilings are the application's slot calendar's, the queues
  # only need room for their sum (docs/architecture.md, "Send queues").
  max_dispatches_per_queue = 500
  send_rate_total          = var.sender_rate_limit_per_second + sum(concat([0], [for s in var.senders : s.rate_limit_per_second]))
  send_queue_count         = max(1, ceil(local.send_rate_total / local.max_dispatches_per_queue))

  # As shared.adapters.tasks.send_queue_names names them: the first keeps the plain name, so a deployment
  # with one queue has the queue it always had.
  send_queue_names = [for i in range(local.send_queue_count) : i == 0 ? local.queue_name : "${local.queue_name}-${i}"]

  # Each queue may dispatch the whole rate, up to its 500/s (one queue and no senders: the sender's rate,
  # as before). The app sends each message through the queue message_id % count, so each queue carries
  # an even share: the sends in flight (each holds a database connection) are shared out the same way.
  send_queue_rate        = min(local.max_dispatches_per_queue, local.send_rate_total)
  send_queue_concurrency = max(1, floor(var.tasks_max_concurrent_dispatches / local.send_queue_count))
}
