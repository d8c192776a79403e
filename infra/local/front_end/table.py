"""What the front end knows about each function: read from the same files terraform deploys from, so the
local stack admits exactly the callers production admits.

- infra/terraform/entry_points.json: trigger, ingress and invokers of every entry point (terraform's
  locals.tf and infra/deploy/gcloud_deploy.sh read it too);
- infra/terraform/variables.tf: the default `timeout` of each function in `var.functions` (Cloud Run
  answers 504 when a request outlives it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[3]
TERRAFORM_DIR = ROOT / "infra" / "terraform"
ENTRY_POINTS_FILE = TERRAFORM_DIR / "entry_points.json"
ALL_USERS = "allUsers"
INTERNAL_ONLY = "ALLOW_INTERNAL_ONLY"
ALLOW_ALL = "ALLOW_ALL"
# terraform's var.name_prefix default: the service accounts are <prefix>-<key with dashes>@...
NAME_PREFIX = "ese"


@dataclass(frozen=True)
class EntryPoint:
    name: str
    trigger: str
    ingress: str
    invokers: tuple[str, ...]  # "allUsers" or identity keys (scheduler, pubsub_push, tasks_invoker)
    timeout_seconds: float

    @property
    def public(self) -> bool:
        return ALL_USERS in self.invokers


def service_account_email(identity: str, project: str, prefix: str = NAME_PREFIX) -> str:
    """identities.tf's account for `identity` (e.g. tasks_invoker -> ese-tasks-invoker@PROJECT...)."""
    return f"{prefix}-{identity.replace('_', '-')}@{project}.iam.gserviceaccount.com"


def invoker_emails(entry: EntryPoint, project: str) -> tuple[str, ...]:
    """The identities that hold roles/run.invoker on the function; empty for a public one."""
    return tuple(service_account_email(key, project) for key in entry.invokers if key != ALL_USERS)


def load_entry_points(
    entry_points_file: Path = ENTRY_POINTS_FILE, variables_file: Path = TERRAFORM_DIR / "variables.tf"
) -> dict[str, EntryPoint]:
    table: Mapping[str, Mapping[str, Any]] = json.loads(entry_points_file.read_text())["entry_points"]
    timeouts = _default_timeouts(variables_file)
    return {
        name: EntryPoint(
            name=name,
            trigger=str(row["trigger"]),
            ingress=str(row["ingress"]),
            invokers=tuple(str(i) for i in row["invokers"]),
            timeout_seconds=float(timeouts[name]),
        )
        for name, row in table.items()
    }


def _default_timeouts(variables_file: Path) -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with variables_file.open() as handle:
        parsed = hcl2.load(handle, serialization_options=options)
    for entry in parsed.get("variable", []):
        if "functions" in entry:
            return {name: sizing["timeout"] for name, sizing in entry["functions"]["default"].items()}
    raise ValueError(f"{variables_file} declares no variable `functions`")
