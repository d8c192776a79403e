# Cloud SQL for PostgreSQL 15: the only source of truth. Reached only through the Cloud SQL connector
# (IAM-authorised, mutual TLS): the instance has a public IP but no authorised networks, and it refuses
# any connection without a client certificate, which only the connector and the Auth Proxy present.

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_79:PostgreSQL 15 is what the schema, migrations and the local test cluster are built and tested on; upgrade deliberately.
  #checkov:skip=CKV_GCP_110:log_statement=ddl already records schema changes; pgAudit's other classes would log phone numbers and message bodies, and the app keeps its own audit trail of decisions.
  #checkov:skip=CKV2_GCP_13:log_duration writes a line per statement (thousands a second while sending) for nothing Query Insights does not already show.
  #checkov:skip=CKV_GCP_60:The public IP has no authorised networks and requires connector client certificates (ssl_mode below); a private IP would need a VPC, peering and a serverless connector for no added protection here.
  name                = "${var.name_prefix}-postgres"
  database_version    = "POSTGRES_15"
  region              = var.region
  deletion_protection = var.db_deletion_protection

  settings {
    tier                        = var.db_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.db_availability_type
    disk_autoresize             = true
    deletion_protection_enabled = var.db_deletion_protection

    ip_configuration {
      ipv4_enabled = true
      ssl_mode     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 14
      }
    }

    maintenance_window {
      day  = 7
      hour = 4
    }

    insights_config {
      query_insights_enabled = true
    }

    # Lets operators run migrations as their own Google identity (DB_IAM_AUTH=true), no password.
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }

    # The connection budget in variables.tf is checked against this value.
    database_flags {
      name  = "max_connections"
      value = tostring(var.db_max_connections)
    }

    # Audit-friendly logging: who connected from where, schema changes, lock waits, spills to disk, and
    # the statement behind any error (parameterized, so without values).
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    # No duration-based statement logging: statements with values would carry phone numbers and bodies.
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
  }
}

resource "google_sql_database" "app" {
  name     = "ese"
  instance = google_sql_database_instance.main.name
}

resource "random_password" "db" {
  length  = 32
  special = false
}

# The application's login. It owns the schema (migrations run as it too, see the README's operator guide).
resource "google_sql_user" "app" {
  name     = "ese"
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
  # A PostgreSQL role that owns objects cannot be dropped through the Cloud SQL API, so without this
  # `terraform destroy` stops half-way on it; ABANDON forgets the user and lets the instance go with it
  # ("This is useful for Postgres, where users cannot be deleted from the API if they have been granted
  # SQL roles", the provider's google_sql_user documentation).
  deletion_policy = "ABANDON"
}
