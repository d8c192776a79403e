"""When a failed task is retried, and when it is given up: the service's documented RetryConfig rules."""

from dataclasses import dataclass

from google.cloud import tasks_v2


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    max_retry_duration: float
    min_backoff: float
    max_backoff: float
    max_doublings: int

    @classmethod
    def from_config(cls, config: tasks_v2.RetryConfig) -> "RetryPolicy":
        return cls(
            max_attempts=config.max_attempts,
            max_retry_duration=config.max_retry_duration.total_seconds(),
            min_backoff=config.min_backoff.total_seconds(),
            max_backoff=config.max_backoff.total_seconds(),
            max_doublings=config.max_doublings,
        )

    def delay_before_retry(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry).

        The interval starts at min_backoff, doubles max_doublings times, then grows linearly by
        2**max_doublings * min_backoff, capped at max_backoff: with 10 s, 300 s and 3 doublings the
        retries come after 10, 20, 40, 80, 160, 240, 300, 300 ... seconds.
        """
        step = retry_number - 1
        if step <= self.max_doublings:
            interval = self.min_backoff * 2.0**step
        else:
            interval = self.min_backoff * 2.0**self.max_doublings * (step - self.max_doublings + 1)
        return min(interval, self.max_backoff)

    def gives_up(self, attempts: int, seconds_since_first_attempt: float) -> bool:
        """Retries stop only once both limits are reached; -1 attempts and a zero duration mean no limit."""
        attempts_reached = self.max_attempts != -1 and attempts >= self.max_attempts
        duration_reached = (
            self.max_retry_duration == 0 or seconds_since_first_attempt >= self.max_retry_duration
        )
        return attempts_reached and duration_reached
