#!/usr/bin/env bash
# Deploys Event Stream Engine with gcloud alone: the same resources, sizes and permissions as
# infra/terraform (tests/infra checks that the two agree), for operators without terraform.
# Safe to re-run: what exists is updated, what is missing is created.
#
#   PROJECT_ID=my-project TWILIO_ACCOUNT_SID=AC... TWILIO_FROM=whatsapp:+14155238886 \
#     [TWILIO_AUTH_TOKEN=... API_TOKENS=tok1,tok2] infra/deploy/gcloud_deploy.sh deploy
#   infra/deploy/gcloud_deploy.sh stage DIR     # only build the source bundle into DIR
#
# SENDERS lists the further WhatsApp senders of sender pools as address=rate, comma-separated
# (SENDERS=whatsapp:+15550000001=200,whatsapp:+15550000002=200), as terraform's var.senders: the send
# queues are sized for SENDER_RATE_LIMIT_PER_SECOND plus their rates, 500/s a queue.
#
# TWILIO_AUTH_TOKEN and API_TOKENS, when set and different from the current value, are added as new
# Secret Manager versions; they are read from the environment and passed on stdin, so they never appear on
# a command line (nor does the generated database password). See README.md (Operator guide).
set -euo pipefail

REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

REGION="${REGION:-us-central1}"
NAME_PREFIX="${NAME_PREFIX:-ese}"
LOG_LEVEL="${LOG_LEVEL:-INFO}"
DEFAULT_PHONE_REGION="${DEFAULT_PHONE_REGION:-US}"
DB_TIER="${DB_TIER:-db-custom-2-7680}"
DB_AVAILABILITY_TYPE="${DB_AVAILABILITY_TYPE:-REGIONAL}"
DB_MAX_CONNECTIONS="${DB_MAX_CONNECTIONS:-200}"
DB_RESERVED_CONNECTIONS="${DB_RESERVED_CONNECTIONS:-20}"
DB_POOL_SIZE="${DB_POOL_SIZE:-4}"
DB_MAX_OVERFLOW="${DB_MAX_OVERFLOW:-2}"
SENDER_RATE_LIMIT_PER_SECOND="${SENDER_RATE_LIMIT_PER_SECOND:-80}"
TASKS_MAX_CONCURRENT_DISPATCHES="${TASKS_MAX_CONCURRENT_DISPATCHES:-40}"
SENDERS="${SENDERS:-}"
FANOUT_MAX_DELIVERY_ATTEMPTS="${FANOUT_MAX_DELIVERY_ATTEMPTS:-10}"
PUBLIC_URL_FORM="${PUBLIC_URL_FORM:-run_app}"

TOPIC="campaign-recipients"
QUEUE="send-messages"
DB_NAME="ese"
DB_USER="ese"

# Mirrors infra/terraform/send_queues.tf: one queue dispatches at most 500/s, so the senders' summed rate
# needs ceil(total / 500) queues, named send-messages, send-messages-1, ... (the app's send_queue_names),
# each dispatching the total up to 500/s and holding its share of the sends in flight.
MAX_DISPATCHES_PER_QUEUE=500
send_rate_total() {
  local total="$SENDER_RATE_LIMIT_PER_SECOND" entry rate
  local -a entries=()
  IFS=, read -ra entries <<<"$SENDERS"
  for entry in "${entries[@]}"; do
    rate="${entry##*=}"
    if [[ "$entry" != whatsapp:+*=* || ! "$rate" =~ ^[1-9][0-9]*$ ]]; then
      echo "SENDERS: '$entry' is not whatsapp:+E164=RATE (a rate of at least 1 message per second)" >&2
      return 1
    fi
    total=$((total + rate))
  done
  echo "$total"
}
send_queue_count() {
  local total count
  total="$(send_rate_total)"
  count=$(((total + MAX_DISPATCHES_PER_QUEUE - 1) / MAX_DISPATCHES_PER_QUEUE))
  if ((count > 64)); then
    echo "SENDERS: the rates add up past 64 send queues x 500/s" >&2
    return 1
  fi
  echo "$((count < 1 ? 1 : count))"
}
send_queue_names() {
  local count index
  count="$(send_queue_count)"
  for ((index = 0; index < count; index++)); do
    if ((index == 0)); then echo "$QUEUE"; else echo "$QUEUE-$index"; fi
  done
}
send_queue_rate() {
  local total
  total="$(send_rate_total)"
  echo "$((total < MAX_DISPATCHES_PER_QUEUE ? total : MAX_DISPATCHES_PER_QUEUE))"
}
send_queue_concurrency() {
  local share
  share=$((TASKS_MAX_CONCURRENT_DISPATCHES / $(send_queue_count)))
  echo "$((share < 1 ? 1 : share))"
}

# Mirrors the defaults of var.functions in infra/terraform (tests/infra checks it).
# entry point       memory cpu timeout concurrency min max
FUNCTIONS=(
  "inbound_webhook   512Mi  1   15      4           1   2"
  "status_webhook    512Mi  1   15      6           1   3"
  "api               512Mi  1   300     4           0   2"
  "trigger_campaign  512Mi  1   300     1           0   2"
  "fanout_recipients 1Gi    1   540     2           0   3"
  "send_message      512Mi  1   60      12          0   8"
)

# How each function is reached (trigger, ingress, invokers) is read from the table terraform and the
# local front-end emulator read too, never written here a second time.
ENTRY_POINTS_JSON="$REPO_ROOT/infra/terraform/entry_points.json"
entry_point() {
  python3 - "$ENTRY_POINTS_JSON" "$1" "$2" <<'PY'
import json
import sys

value = json.load(open(sys.argv[1]))["entry_points"][sys.argv[2]][sys.argv[3]]
print(" ".join(value) if isinstance(value, list) else value)
PY
}
# ingress_settings as terraform names them -> gcloud's --ingress-settings
ingress_flag() {
  case "$(entry_point "$1" ingress)" in
    ALLOW_ALL) echo all ;;
    ALLOW_INTERNAL_ONLY) echo internal-only ;;
    *) echo "unknown ingress for $1" >&2 && return 1 ;;
  esac
}
# roles/run.invoker members: allUsers, or the service account an invoker key names.
invoker_members() {
  local who
  for who in $(entry_point "$1" invokers); do
    if [[ "$who" == allUsers ]]; then echo allUsers; else echo "serviceAccount:$(sa_email "${who//_/-}")"; fi
  done
}

# Mirrors local.function_secrets: which Secret Manager values each function reads.
secrets_for() {
  case "$1" in
    inbound_webhook | status_webhook | send_message | trigger_campaign) echo "DB_PASSWORD TWILIO_AUTH_TOKEN" ;;
    api) echo "DB_PASSWORD API_TOKENS TWILIO_AUTH_TOKEN" ;;
    *) echo "DB_PASSWORD" ;;
  esac
}

secret_id() { echo "${NAME_PREFIX}-$(echo "$1" | tr '[:upper:]_' '[:lower:]-')"; }
function_name() { echo "${NAME_PREFIX}-${1//_/-}"; }
sa_email() { echo "${NAME_PREFIX}-$1@${PROJECT_ID}.iam.gserviceaccount.com"; }
function_sa() { sa_email "fn-${1//_/-}"; }
timeout_of() {
  local line ep timeout
  for line in "${FUNCTIONS[@]}"; do
    read -r ep _ _ timeout _ <<<"$line"
    if [[ "$ep" == "$1" ]]; then echo "$timeout"; fi
  done
}
project_number() {
  if [[ -z "${PROJECT_NUMBER:-}" ]]; then
    PROJECT_NUMBER="$(gcloud projects describe "$PROJECT_ID" --format 'value(projectNumber)')"
  fi
  echo "$PROJECT_NUMBER"
}
# Both URL forms are deterministic, so every function can be told every URL before any exists. The
# machine-called (internal) functions are always called on run.app: internal ingress admits Scheduler,
# Pub/Sub and Cloud Tasks only there. The public ones use PUBLIC_URL_FORM (infra/terraform/locals.tf).
function_url() {
  if [[ "$(entry_point "$1" ingress)" == ALLOW_INTERNAL_ONLY || "$PUBLIC_URL_FORM" == run_app ]]; then
    echo "https://$(function_name "$1")-$(project_number).${REGION}.run.app"
  else
    echo "https://${REGION}-${PROJECT_ID}.cloudfunctions.net/$(function_name "$1")"
  fi
}
# IAM changes take minutes to reach every Google service (typically 2, sometimes 7 or more:
# https://cloud.google.com/iam/docs/access-change-propagation); a first deploy retries rather than fails.
with_retries() {
  local attempt
  for attempt in 1 2 3 4; do
    if "$@"; then return 0; fi
    if ((attempt < 4)); then
      log "failed (attempt $attempt); IAM changes may still be propagating, retrying in 60 s"
      sleep 60
    fi
  done
  return 1
}
log() { printf '==> %s\n' "$*" >&2; }

# The bundle allowlist, the same as infra/terraform/bundle.tf: main.py, requirements.txt and shared/.
stage_bundle() {
  local dest="$1"
  mkdir -p "$dest"
  cp "$REPO_ROOT/functions/main.py" "$dest/main.py"
  cp "$REPO_ROOT/requirements.txt" "$dest/requirements.txt"
  (cd "$REPO_ROOT" && find shared -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0) |
    while IFS= read -r -d '' file; do
      mkdir -p "$dest/$(dirname "$file")"
      cp "$REPO_ROOT/$file" "$dest/$file"
    done
}

check_budget() {
  local total=0 line
  for line in "${FUNCTIONS[@]}"; do
    read -r _ _ _ _ _ _ max <<<"$line"
    total=$((total + max))
  done
  local worst=$((total * (DB_POOL_SIZE + DB_MAX_OVERFLOW)))
  local available=$((DB_MAX_CONNECTIONS - DB_RESERVED_CONNECTIONS))
  if ((worst >= available)); then
    echo "connection budget exceeded: ${total} instances x $((DB_POOL_SIZE + DB_MAX_OVERFLOW)) = ${worst} >= ${available}" >&2
    exit 1
  fi
}

ensure_service_account() {
  local id="$1" display="$2"
  gcloud iam service-accounts describe "$(sa_email "$id")" --project "$PROJECT_ID" >/dev/null 2>&1 ||
    gcloud iam service-accounts create "$id" --project "$PROJECT_ID" --display-name "$display"
}

ensure_database() {
  local instance="${NAME_PREFIX}-postgres"
  if ! gcloud sql instances describe "$instance" --project "$PROJECT_ID" >/dev/null 2>&1; then
    log "creating Cloud SQL instance $instance (takes several minutes)"
    gcloud sql instances create "$instance" --project "$PROJECT_ID" --region "$REGION" \
      --database-version POSTGRES_15 --edition enterprise --tier "$DB_TIER" \
      --availability-type "${DB_AVAILABILITY_TYPE,,}" --storage-auto-increase \
      --backup-start-time 03:00 --enable-point-in-time-recovery --retained-backups-count 14 \
      --retained-transaction-log-days 7 --maintenance-window-day SUN --maintenance-window-hour 4 \
      --insights-config-query-insights-enabled --ssl-mode TRUSTED_CLIENT_CERTIFICATE_REQUIRED \
      --deletion-protection \
      --database-flags "cloudsql.iam_authentication=on,max_connections=${DB_MAX_CONNECTIONS},log_connections=on,log_disconnections=on,log_hostname=on,log_statement=ddl,log_min_error_statement=error,log_checkpoints=on,log_lock_waits=on,log_temp_files=0,log_min_duration_statement=-1,log_min_messages=error"
  fi
  gcloud sql databases describe "$DB_NAME" --instance "$instance" --project "$PROJECT_ID" >/dev/null 2>&1 ||
    gcloud sql databases create "$DB_NAME" --instance "$instance" --project "$PROJECT_ID"

  local password_secret
  password_secret="$(secret_id DB_PASSWORD)"
  if ! gcloud secrets versions describe latest --secret "$password_secret" --project "$PROJECT_ID" >/dev/null 2>&1; then
    local password method=POST
    password="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
    if gcloud sql users list --instance "$instance" --project "$PROJECT_ID" --format 'value(name)' | grep -qx "$DB_USER"; then
      method=PUT
    fi
    printf '%s' "$password" | sql_user_with_password "$method" "$instance"
    printf '%s' "$password" | gcloud secrets versions add "$password_secret" --project "$PROJECT_ID" --data-file=-
  fi
}

# Creates (POST) or updates (PUT) the database user with the password read from stdin, through the Cloud
# SQL Admin API: gcloud's sql users commands take the password as an argument, which would put it on a
# command line any local user can read. The access token travels in a curl config read from a pipe, for
# the same reason.
sql_user_with_password() {
  local method="$1" instance="$2" url
  url="https://sqladmin.googleapis.com/v1/projects/${PROJECT_ID}/instances/${instance}/users"
  if [[ "$method" == PUT ]]; then url+="?name=${DB_USER}"; fi
  python3 -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "password": sys.stdin.read()}))' "$DB_USER" |
    curl -sS --fail-with-body -X "$method" -H 'Content-Type: application/json' --data-binary @- \
      -K <(printf 'header = "Authorization: Bearer %s"\n' "$(gcloud auth print-access-token)") "$url" >/dev/null
}

# Adds a secret version only when the value differs from the latest one, so re-running the script does not
# pile up identical versions (nor restart every instance that reads `latest`).
add_secret_version_if_changed() {
  local id="$1" value="$2" current
  current="$(gcloud secrets versions access latest --secret "$id" --project "$PROJECT_ID" 2>/dev/null || true)"
  if [[ "$current" == "$value" ]]; then
    log "secret $id unchanged"
    return
  fi
  printf '%s' "$value" | gcloud secrets versions add "$id" --project "$PROJECT_ID" --data-file=-
}

ensure_secrets() {
  local key id
  for key in TWILIO_AUTH_TOKEN API_TOKENS DB_PASSWORD; do
    id="$(secret_id "$key")"
    gcloud secrets describe "$id" --project "$PROJECT_ID" >/dev/null 2>&1 ||
      gcloud secrets create "$id" --project "$PROJECT_ID" --replication-policy automatic
  done
  if [[ -n "${TWILIO_AUTH_TOKEN:-}" ]]; then
    add_secret_version_if_changed "$(secret_id TWILIO_AUTH_TOKEN)" "$TWILIO_AUTH_TOKEN"
  fi
  if [[ -n "${API_TOKENS:-}" ]]; then
    add_secret_version_if_changed "$(secret_id API_TOKENS)" "$API_TOKENS"
  fi
  for key in TWILIO_AUTH_TOKEN API_TOKENS; do
    if ! gcloud secrets versions describe latest --secret "$(secret_id "$key")" --project "$PROJECT_ID" >/dev/null 2>&1; then
      echo "secret $(secret_id "$key") has no value: set $key and re-run" >&2
      exit 1
    fi
  done
}

grant_roles() {
  local line ep key instance="${NAME_PREFIX}-postgres"
  local sql_condition="expression=resource.name == 'projects/${PROJECT_ID}/instances/${instance}' && resource.service == 'sqladmin.googleapis.com',title=only-${instance}"
  for line in "${FUNCTIONS[@]}"; do
    read -r ep _ <<<"$line"
    gcloud projects add-iam-policy-binding "$PROJECT_ID" --member "serviceAccount:$(function_sa "$ep")" \
      --role roles/cloudsql.client --condition "$sql_condition" >/dev/null
    for key in $(secrets_for "$ep"); do
      gcloud secrets add-iam-policy-binding "$(secret_id "$key")" --project "$PROJECT_ID" \
        --member "serviceAccount:$(function_sa "$ep")" --role roles/secretmanager.secretAccessor >/dev/null
    done
  done
  for ep in trigger_campaign api; do
    gcloud pubsub topics add-iam-policy-binding "$TOPIC" --project "$PROJECT_ID" \
      --member "serviceAccount:$(function_sa "$ep")" --role roles/pubsub.publisher >/dev/null
  done
  local queue
  for ep in fanout_recipients send_message trigger_campaign; do
    for queue in $(send_queue_names); do
      gcloud tasks queues add-iam-policy-binding "$queue" --location "$REGION" --project "$PROJECT_ID" \
        --member "serviceAccount:$(function_sa "$ep")" --role roles/cloudtasks.enqueuer >/dev/null
    done
    gcloud iam service-accounts add-iam-policy-binding "$(sa_email tasks-invoker)" --project "$PROJECT_ID" \
      --member "serviceAccount:$(function_sa "$ep")" --role roles/iam.serviceAccountUser >/dev/null
  done
  # The health report reads every send queue's state and statistics; the scheduler tick drains
  # dead-lettered pages into the database (as infra/terraform/identities.tf).
  for queue in $(send_queue_names); do
    gcloud tasks queues add-iam-policy-binding "$queue" --location "$REGION" --project "$PROJECT_ID" \
      --member "serviceAccount:$(function_sa api)" --role roles/cloudtasks.viewer >/dev/null
  done
  gcloud pubsub subscriptions add-iam-policy-binding "$TOPIC-dead-letter-hold" --project "$PROJECT_ID" \
    --member "serviceAccount:$(function_sa trigger_campaign)" --role roles/pubsub.subscriber >/dev/null
  # The one role Google documents for a custom build service account (as infra/terraform/functions.tf).
  gcloud projects add-iam-policy-binding "$PROJECT_ID" --member "serviceAccount:$(sa_email function-build)" \
    --role roles/run.builder --condition None >/dev/null
}

ensure_pubsub() {
  gcloud pubsub topics describe "$TOPIC" --project "$PROJECT_ID" >/dev/null 2>&1 ||
    gcloud pubsub topics create "$TOPIC" --project "$PROJECT_ID" --message-retention-duration 1d
  gcloud pubsub topics describe "$TOPIC-dead-letter" --project "$PROJECT_ID" >/dev/null 2>&1 ||
    gcloud pubsub topics create "$TOPIC-dead-letter" --project "$PROJECT_ID"
  gcloud pubsub subscriptions describe "$TOPIC-dead-letter-hold" --project "$PROJECT_ID" >/dev/null 2>&1 ||
    gcloud pubsub subscriptions create "$TOPIC-dead-letter-hold" --project "$PROJECT_ID" \
      --topic "$TOPIC-dead-letter" --message-retention-duration 7d --ack-deadline 60 --expiration-period never
}

ensure_queues() {
  local verb queue rate concurrency
  rate="$(send_queue_rate)"
  concurrency="$(send_queue_concurrency)"
  for queue in $(send_queue_names); do
    verb=create
    gcloud tasks queues describe "$queue" --location "$REGION" --project "$PROJECT_ID" >/dev/null 2>&1 && verb=update
    # Same rate, concurrency and retry safety net as infra/terraform/tasks.tf (see the reasoning there).
    gcloud tasks queues "$verb" "$queue" --location "$REGION" --project "$PROJECT_ID" \
      --max-dispatches-per-second "$rate" \
      --max-concurrent-dispatches "$concurrency" \
      --max-attempts 300 --min-backoff 10s --max-backoff 300s --max-doublings 5 --max-retry-duration 86400s \
      --log-sampling-ratio 0.1
  done
}

write_env_file() {
  local ep="$1" concurrency="$2" file="$3" caller="" member
  # The identities an invoker-restricted function accepts: its invokers in the table (none when public).
  for member in $(invoker_members "$ep"); do
    if [[ "$member" == allUsers ]]; then
      caller=""
      break
    fi
    caller+="${caller:+,}${member#serviceAccount:}"
  done
  {
    printf 'GCP_PROJECT: "%s"\n' "$PROJECT_ID"
    printf 'GCP_REGION: "%s"\n' "$REGION"
    printf 'LOG_LEVEL: "%s"\n' "$LOG_LEVEL"
    printf 'DEFAULT_REGION: "%s"\n' "$DEFAULT_PHONE_REGION"
    printf 'INSTANCE_CONNECTION_NAME: "%s:%s:%s-postgres"\n' "$PROJECT_ID" "$REGION" "$NAME_PREFIX"
    printf 'DB_USER: "%s"\n' "$DB_USER"
    printf 'DB_NAME: "%s"\n' "$DB_NAME"
    printf 'DB_IAM_AUTH: "false"\n'
    printf 'DB_IP_TYPE: "public"\n'
    printf 'DB_POOL_SIZE: "%s"\n' "$DB_POOL_SIZE"
    printf 'DB_MAX_OVERFLOW: "%s"\n' "$DB_MAX_OVERFLOW"
    printf 'SENDER_RATE_LIMIT_PER_SECOND: "%s"\n' "$SENDER_RATE_LIMIT_PER_SECOND"
    printf 'TWILIO_ACCOUNT_SID: "%s"\n' "$TWILIO_ACCOUNT_SID"
    if [[ -n "${TWILIO_FROM:-}" ]]; then printf 'TWILIO_FROM: "%s"\n' "$TWILIO_FROM"; fi
    if [[ -n "${TWILIO_MESSAGING_SERVICE_SID:-}" ]]; then
      printf 'TWILIO_MESSAGING_SERVICE_SID: "%s"\n' "$TWILIO_MESSAGING_SERVICE_SID"
    fi
    printf 'PUBSUB_TOPIC: "%s"\n' "$TOPIC"
    printf 'TASKS_QUEUE: "%s"\n' "$QUEUE"
    printf 'TASKS_QUEUE_COUNT: "%s"\n' "$(send_queue_count)"
    printf 'TASKS_SERVICE_ACCOUNT_EMAIL: "%s"\n' "$(sa_email tasks-invoker)"
    printf 'INBOUND_WEBHOOK_URL: "%s"\n' "$(function_url inbound_webhook)"
    printf 'STATUS_WEBHOOK_URL: "%s"\n' "$(function_url status_webhook)"
    printf 'API_URL: "%s"\n' "$(function_url api)"
    printf 'TRIGGER_CAMPAIGN_URL: "%s"\n' "$(function_url trigger_campaign)"
    printf 'SEND_MESSAGE_URL: "%s"\n' "$(function_url send_message)"
    printf 'FANOUT_RECIPIENTS_URL: "%s"\n' "$(function_url fanout_recipients)"
    printf 'THREADS: "%s"\n' "$concurrency"
    if [[ -n "$caller" ]]; then printf 'OIDC_ALLOWED_EMAILS: "%s"\n' "$caller"; fi
  } >"$file"
}

deploy_functions() {
  local stage="$1" line ep memory cpu timeout concurrency min max key secrets member
  for line in "${FUNCTIONS[@]}"; do
    read -r ep memory cpu timeout concurrency min max <<<"$line"
    secrets=""
    for key in $(secrets_for "$ep"); do secrets+="${secrets:+,}${key}=$(secret_id "$key"):latest"; done
    write_env_file "$ep" "$concurrency" "$stage.env.yaml"
    log "deploying $(function_name "$ep") ($(entry_point "$ep" trigger))"
    # fanout_recipients is served over HTTP too: the push subscription below delivers its CloudEvents.
    with_retries gcloud functions deploy "$(function_name "$ep")" --gen2 --project "$PROJECT_ID" --region "$REGION" \
      --runtime python311 --source "$stage" --entry-point "$ep" --trigger-http --no-allow-unauthenticated \
      --service-account "$(function_sa "$ep")" \
      --build-service-account "projects/${PROJECT_ID}/serviceAccounts/$(sa_email function-build)" \
      --memory "$memory" --cpu "$cpu" --timeout "${timeout}s" --concurrency "$concurrency" \
      --min-instances "$min" --max-instances "$max" --ingress-settings "$(ingress_flag "$ep")" \
      --env-vars-file "$stage.env.yaml" --set-secrets "$secrets" --quiet
    for member in $(invoker_members "$ep"); do
      gcloud functions add-invoker-policy-binding "$(function_name "$ep")" --region "$REGION" \
        --project "$PROJECT_ID" --member "$member" >/dev/null
    done
  done
}

ensure_fanout_subscription() {
  local agent verb=create url
  # A brand-new project may have no Pub/Sub service agent yet, and roles cannot be granted to one that
  # does not exist (https://cloud.google.com/iam/docs/create-service-agents).
  gcloud beta services identity create --service pubsub.googleapis.com --project "$PROJECT_ID" >/dev/null
  agent="serviceAccount:service-$(project_number)@gcp-sa-pubsub.iam.gserviceaccount.com"
  url="$(function_url fanout_recipients)"
  gcloud iam service-accounts add-iam-policy-binding "$(sa_email pubsub-push)" --project "$PROJECT_ID" \
    --member "$agent" --role roles/iam.serviceAccountTokenCreator >/dev/null
  gcloud pubsub topics add-iam-policy-binding "$TOPIC-dead-letter" --project "$PROJECT_ID" \
    --member "$agent" --role roles/pubsub.publisher >/dev/null
  gcloud pubsub subscriptions describe "$TOPIC-fanout" --project "$PROJECT_ID" >/dev/null 2>&1 && verb=update
  local topic_args=()
  if [[ "$verb" == create ]]; then topic_args=(--topic "$TOPIC"); fi
  gcloud pubsub subscriptions "$verb" "$TOPIC-fanout" --project "$PROJECT_ID" "${topic_args[@]}" \
    --push-endpoint "${url}/projects/${PROJECT_ID}/topics/${TOPIC}" \
    --push-auth-service-account "$(sa_email pubsub-push)" --push-auth-token-audience "$url" \
    --ack-deadline "$(timeout_of fanout_recipients)" --message-retention-duration 1d --min-retry-delay 10s --max-retry-delay 600s \
    --dead-letter-topic "$TOPIC-dead-letter" --max-delivery-attempts "$FANOUT_MAX_DELIVERY_ATTEMPTS" \
    --expiration-period never
  gcloud pubsub subscriptions add-iam-policy-binding "$TOPIC-fanout" --project "$PROJECT_ID" \
    --member "$agent" --role roles/pubsub.subscriber >/dev/null
}

ensure_scheduler() {
  local verb=create url
  url="$(function_url trigger_campaign)"
  gcloud scheduler jobs describe "${NAME_PREFIX}-trigger-campaign" --location "$REGION" --project "$PROJECT_ID" \
    >/dev/null 2>&1 && verb=update
  gcloud scheduler jobs "$verb" http "${NAME_PREFIX}-trigger-campaign" --location "$REGION" --project "$PROJECT_ID" \
    --schedule '* * * * *' --time-zone Etc/UTC --uri "$url" --http-method POST \
    --oidc-service-account-email "$(sa_email scheduler)" --oidc-token-audience "$url" \
    --attempt-deadline "$(timeout_of trigger_campaign)s" --max-retry-attempts 0
}

deploy() {
  : "${PROJECT_ID:?set PROJECT_ID}" "${TWILIO_ACCOUNT_SID:?set TWILIO_ACCOUNT_SID}"
  if [[ -z "${TWILIO_FROM:-}${TWILIO_MESSAGING_SERVICE_SID:-}" ]]; then
    echo "set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID" >&2
    exit 1
  fi
  check_budget
  # A malformed SENDERS stops the deploy here, before anything is created.
  send_queue_count >/dev/null
  log "enabling APIs"
  gcloud services enable --project "$PROJECT_ID" cloudfunctions.googleapis.com run.googleapis.com \
    cloudbuild.googleapis.com artifactregistry.googleapis.com sqladmin.googleapis.com \
    secretmanager.googleapis.com pubsub.googleapis.com cloudtasks.googleapis.com \
    cloudscheduler.googleapis.com eventarc.googleapis.com iam.googleapis.com
  local line ep
  for line in "${FUNCTIONS[@]}"; do
    read -r ep _ <<<"$line"
    ensure_service_account "fn-${ep//_/-}" "Event Stream Engine ${ep} function"
  done
  ensure_service_account function-build "Event Stream Engine function builds"
  ensure_service_account scheduler "Cloud Scheduler calling trigger_campaign"
  ensure_service_account pubsub-push "Pub/Sub pushing recipient pages to fanout_recipients"
  ensure_service_account tasks-invoker "Cloud Tasks calling send_message"
  ensure_secrets
  ensure_database
  ensure_pubsub
  ensure_queues
  grant_roles

  STAGE_DIR="$(mktemp -d)"
  trap 'rm -rf "$STAGE_DIR" "$STAGE_DIR.env.yaml"' EXIT
  stage_bundle "$STAGE_DIR"
  deploy_functions "$STAGE_DIR"
  ensure_fanout_subscription
  ensure_scheduler

  log "done. Paste into the Twilio WhatsApp sender (HTTP POST):"
  echo "  A message comes in:  $(function_url inbound_webhook)"
  echo "  Status callback URL: $(function_url status_webhook)"
  echo "API: $(function_url api)   (start a campaign now: POST /v1/campaigns/{id}/trigger)"
  echo "Dashboard: $(function_url api)/ui/   (sign in with an API token)"
  echo "INSTANCE_CONNECTION_NAME for make migrate: ${PROJECT_ID}:${REGION}:${NAME_PREFIX}-postgres"
  echo "Then check every hop: make smoke (README, Operator guide)."
}

case "${1:-}" in
  deploy) deploy ;;
  stage) stage_bundle "${2:?usage: $0 stage DIR}" ;;
  *)
    echo "usage: $0 deploy | stage DIR" >&2
    exit 2
    ;;
esac
