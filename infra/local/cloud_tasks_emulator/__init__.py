"""A local Cloud Tasks v2 service for the unmodified google-cloud-tasks client (ARCHITECTURE.md section 7)."""

from infra.local.cloud_tasks_emulator.emulator_state import Retention
from infra.local.cloud_tasks_emulator.server import CloudTasksEmulator
from infra.local.cloud_tasks_emulator.task_validation import TaskLimits

__all__ = ["CloudTasksEmulator", "Retention", "TaskLimits"]
