terraform {
  # 1.9 is the first release whose variable validations may reference other variables, which the
  # connection-budget and queue-concurrency rules in variables.tf need.
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    # google_project_service_identity (the Pub/Sub service agent on a brand-new project) is beta-only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.0"
    }
    # time_sleep: waits for IAM propagation on a first apply (identities.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State holds the generated database password, so it lives in a private, versioned GCS bucket and
  # never on an operator's laptop. The bucket is given at init (`make plan` passes TF_STATE_BUCKET):
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=event-stream-engine"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

# The project number names the Pub/Sub service agent, which needs roles for OIDC push and dead-lettering.
data "google_project" "this" {
  project_id = var.project_id
}
