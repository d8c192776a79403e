"""infra/terraform parsed with python-hcl2 into plain dicts, for tests that hold it against the code.

Terraform itself cannot load this configuration here (its providers cannot be downloaded), so the
tests read the HCL: literal values come back as Python values, expressions as "${...}" strings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "infra" / "terraform"
MAIN_PY = ROOT / "functions" / "main.py"

_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


@dataclass(frozen=True)
class TerraformConfig:
    resources: dict[str, dict[str, dict[str, Any]]]
    locals: dict[str, Any]
    variables: dict[str, dict[str, Any]]

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources[kind][name]

    def default(self, variable: str) -> Any:
        return self.variables[variable]["default"]


def load_terraform(directory: Path = TERRAFORM_DIR) -> TerraformConfig:
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    local_values: dict[str, Any] = {}
    variables: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=_OPTIONS)
        for entry in parsed.get("resource", []):
            for kind, named in entry.items():
                resources.setdefault(kind, {}).update(named)
        for entry in parsed.get("locals", []):
            local_values.update(entry)
        for entry in parsed.get("variable", []):
            variables.update(entry)
    return TerraformConfig(resources=resources, locals=local_values, variables=variables)


ENTRY_POINTS_JSON = TERRAFORM_DIR / "entry_points.json"


def entry_points() -> dict[str, dict[str, Any]]:
    """The table locals.tf decodes (`local.entry_points`): trigger, ingress and invokers per entry point."""
    table: dict[str, dict[str, Any]] = json.loads(ENTRY_POINTS_JSON.read_text())["entry_points"]
    return table


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The one nested block called `name` (hcl2 returns every block as a list)."""
    (only,) = body[name]
    return dict(only)


def dynamic_block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A `dynamic "name"` block: its for_each and its content."""
    (found,) = [entry[name] for entry in body.get("dynamic", []) if name in entry]
    return dict(found)


def bundle_files(config: TerraformConfig) -> dict[str, Path]:
    """The source bundle as bundle.tf builds it: path in the zip => file in the repository."""
    files = {name: ROOT / source for name, source in config.locals["bundle_fixed_files"].items()}
    for pattern in config.locals["bundle_globs"]:
        for path in ROOT.glob(pattern):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and "__pycache__/" not in relative and not relative.endswith(".pyc"):
                files[relative] = path
    return files


def infra_venv() -> Path:
    """`.venv-infra` (checkov, shellcheck), installed by `make infra-venv` on first use; a no-op afterwards.
    An install that fails fails the test with pip's own words, not a bare exit status."""
    result = subprocess.run(["make", "-s", "infra-venv"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(
            f"make infra-venv failed ({result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}"
        )
    return ROOT / ".venv-infra"


# The variables terraform requires (no defaults): enough for a plan of variables.tf to pass.
REQUIRED_VARS = {
    "project_id": "ese-prod-123",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_from": "whatsapp:+14155238886",
}
TERRAFORM = shutil.which("terraform")
# The locals of send_queues.tf: only variables feed them, so terraform evaluates them without providers.
SEND_QUEUE_LOCALS = (
    "send_queue_count",
    "send_queue_names",
    "send_queue_rate",
    "send_queue_concurrency",
)


def send_queue_locals(workdir: Path, values: dict[str, Any]) -> dict[str, Any]:
    """send_queues.tf's locals as terraform itself computes them from `values` (with REQUIRED_VARS): an
    apply of variables.tf and send_queues.tf alone, plus outputs naming the locals. Raises
    CalledProcessError (terraform's words in its stderr) when a variable validation refuses them."""
    if TERRAFORM is None:
        pytest.skip("terraform binary not installed (CI and the dev machine have /usr/local/bin/terraform)")
    workdir.mkdir(parents=True)
    for name in ("variables.tf", "send_queues.tf"):
        shutil.copy(TERRAFORM_DIR / name, workdir)
    (workdir / "outputs.tf").write_text(
        "".join(f'output "{name}" {{\n  value = local.{name}\n}}\n' for name in SEND_QUEUE_LOCALS)
    )
    (workdir / "test.tfvars.json").write_text(json.dumps({**REQUIRED_VARS, **values}))
    env = {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": os.devnull,
        "TF_DATA_DIR": str(workdir / ".terraform"),
    }

    def terraform(*args: str) -> str:
        assert TERRAFORM is not None
        done = subprocess.run(
            [TERRAFORM, *args], cwd=workdir, capture_output=True, text=True, env=env, check=True
        )
        return done.stdout

    terraform(
        "apply", "-auto-approve", "-input=false", "-no-color", "-lock=false", "-var-file=test.tfvars.json"
    )
    outputs = json.loads(terraform("output", "-json", "-no-color"))
    return {name: output["value"] for name, output in outputs.items()}
