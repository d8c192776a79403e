# The clock that starts scheduled campaigns: trigger_campaign starts every campaign whose time has come.

resource "google_cloud_scheduler_job" "trigger_campaign" {
  name        = "${var.name_prefix}-trigger-campaign"
  region      = var.region
  description = "Starts due campaigns (trigger_campaign) every minute."
  schedule    = "* * * * *"
  time_zone   = "Etc/UTC"
  # Let a slow tick finish rather than abandon it mid-way; the next tick is a minute later anyway.
  attempt_deadline = "${var.functions["trigger_campaign"].timeout}s"

  # No retries: the next tick is the retry, and starting a campaign is a compare-and-set, so an
  # overlapping tick cannot start one twice.
  retry_config {
    retry_count = 0
  }

  # The run.app URL: internal ingress admits Cloud Scheduler only on it (locals.tf).
  http_target {
    http_method = "POST"
    uri         = local.function_urls["trigger_campaign"]
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.function_urls["trigger_campaign"]
    }
  }

  depends_on = [google_cloudfunctions2_function.fn, google_cloud_run_service_iam_member.invoker]
}
