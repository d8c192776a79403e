# The machine callers of the private functions, and what each function's own account may do.
# Roles are granted on the one resource they concern (topic, queue, secret, service account) rather
# than on the project wherever the API allows it.

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Cloud Scheduler calling trigger_campaign"
}

resource "google_service_account" "pubsub_push" {
  account_id   = "${var.name_prefix}-pubsub-push"
  display_name = "Pub/Sub pushing recipient pages to fanout_recipients"
}

resource "google_service_account" "tasks_invoker" {
  account_id   = "${var.name_prefix}-tasks-invoker"
  display_name = "Cloud Tasks calling send_message"
}

# Pub/Sub's service agent mints the push subscription's tokens and dead-letters failed pages. In a
# brand-new project it may not exist yet, and "If a service agent hasn't been created yet, then you can't
# grant roles to the service agent" (https://cloud.google.com/iam/docs/create-service-agents): create it
# first (a beta-only resource; creating an existing agent is a no-op).
resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  project  = var.project_id
  service  = "pubsub.googleapis.com"
}

locals {
  pubsub_service_agent = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

# IAM is eventually consistent: "Typically 2 minutes, potentially 7 minutes or longer"
# (https://cloud.google.com/iam/docs/access-change-propagation). On a first apply the function builds, the
# functions reading their secrets, and the push subscription's token minting would otherwise race grants
# made seconds earlier and fail. Waits once, when the grants are first made (time_sleep sleeps on create).
resource "time_sleep" "iam_propagation" {
  create_duration = "150s"

  depends_on = [
    google_project_iam_member.build,
    google_project_iam_member.function_sql_client,
    google_secret_manager_secret_iam_member.function_reads_secret,
    google_service_account_iam_member.function_acts_as_tasks_invoker,
    google_service_account_iam_member.pubsub_agent_mints_push_tokens,
  ]
}

# Every function talks to PostgreSQL through the Cloud SQL connector, scoped to this one instance.
resource "google_project_iam_member" "function_sql_client" {
  for_each = local.entry_points
  project  = var.project_id
  role     = "roles/cloudsql.client"
  member   = google_service_account.function[each.key].member

  condition {
    title      = "only-${google_sql_database_instance.main.name}"
    expression = "resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.main.name}' && resource.service == 'sqladmin.googleapis.com'"
  }
}

# start_campaign publishes recipient pages; both the scheduler tick and the API's trigger call it.
resource "google_pubsub_topic_iam_member" "function_publishes_pages" {
  for_each = toset(["trigger_campaign", "api"])
  topic    = google_pubsub_topic.campaign_recipients.id
  role     = "roles/pubsub.publisher"
  member   = google_service_account.function[each.key].member
}

# fanout creates one task per message; send_message reschedules deferred and retried sends; the scheduler
# tick's sweeper looks up and re-creates tasks that were lost (cloudtasks.enqueuer includes tasks.get).
# On every send queue: a message's tasks go to the queue message_id % count (send_queues.tf).
resource "google_cloud_tasks_queue_iam_member" "function_enqueues_sends" {
  for_each = {
    for pair in setproduct(["fanout_recipients", "send_message", "trigger_campaign"], range(local.send_queue_count)) :
    "${pair[0]}/${local.send_queue_names[pair[1]]}" => { function = pair[0], queue = pair[1] }
  }
  location = var.region
  name     = google_cloud_tasks_queue.send_messages[each.value.queue].name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.function[each.value.function].member
}

# The health report reads every send queue's state and statistics (GetQueue: cloudtasks.queues.get).
resource "google_cloud_tasks_queue_iam_member" "api_reads_send_queue" {
  count    = local.send_queue_count
  location = var.region
  name     = google_cloud_tasks_queue.send_messages[count.index].name
  role     = "roles/cloudtasks.viewer"
  member   = google_service_account.function["api"].member
}

# The bindings of the single queue there was, kept under their new addresses: an IAM member destroyed
# after its replacement was created would remove the very binding the replacement holds.
moved {
  from = google_cloud_tasks_queue_iam_member.function_enqueues_sends["fanout_recipients"]
  to   = google_cloud_tasks_queue_iam_member.function_enqueues_sends["fanout_recipients/send-messages"]
}

moved {
  from = google_cloud_tasks_queue_iam_member.function_enqueues_sends["send_message"]
  to   = google_cloud_tasks_queue_iam_member.function_enqueues_sends["send_message/send-messages"]
}

moved {
  from = google_cloud_tasks_queue_iam_member.function_enqueues_sends["trigger_campaign"]
  to   = google_cloud_tasks_queue_iam_member.function_enqueues_sends["trigger_campaign/send-messages"]
}

moved {
  from = google_cloud_tasks_queue_iam_member.api_reads_send_queue
  to   = google_cloud_tasks_queue_iam_member.api_reads_send_queue[0]
}

# The scheduler tick drains dead-lettered pages into the database (pull and acknowledge on the hold
# subscription only), where the health report counts them.
resource "google_pubsub_subscription_iam_member" "tick_drains_dead_letters" {
  subscription = google_pubsub_subscription.dead_letter_hold.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.function["trigger_campaign"].member
}

# A task carrying an OIDC token for tasks_invoker may only be created by an account that can act as it.
resource "google_service_account_iam_member" "function_acts_as_tasks_invoker" {
  for_each           = toset(["fanout_recipients", "send_message", "trigger_campaign"])
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.function[each.key].member
}

# Pub/Sub mints the push subscription's OIDC tokens as pubsub_push (needed in projects created before
# April 2021, harmless after).
resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
