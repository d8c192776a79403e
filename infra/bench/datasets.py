"""Seeded, reproducible data for the figures, generated into `.local/bench/` (git-ignored).

Every user is derived from its index: user i always has the same phone and attributes, so an import file,
the rows seeded for a segment and the recipients of a campaign agree from run to run and machine to machine.
Phones are valid US numbers (8 area codes x 700 exchanges x 10,000 lines, unique below 56 million).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from infra.bench.db import connect
from infra.bench.paths import BENCH_DIR

DATA_DIR = BENCH_DIR
AREA_CODES = ("212", "415", "312", "617", "206", "303", "404", "512")
CITIES = ("Lagos", "Nairobi", "Accra", "Cairo", "Kampala", "Kigali", "Dakar", "Tunis", "Lusaka", "Harare")
TIERS = ("bronze", "silver", "gold", "platinum")
FIRST_NAMES = ("Ada", "Kofi", "Amina", "Tendai", "Zola", "Musa", "Nia", "Tariq", "Lulu", "Sefu")
INVALID_PHONES = ("+1212555", "call me", "+999123456789", "12", "+1 (212) 555-01x9")
ATTRIBUTE_COLUMNS = ("first_name", "city", "age", "tier", "signup_date", "timezone")
# Part of the cached file names: bump it when the generated rows change.
FORMAT = "v2"
IMPORT_COLUMNS = ("phone", "consent_state", *ATTRIBUTE_COLUMNS)


def phone(index: int) -> str:
    rest = index // len(AREA_CODES)
    return f"+1{AREA_CODES[index % len(AREA_CODES)]}{200 + (rest // 10_000) % 700:03d}{rest % 10_000:04d}"


def attributes(index: int) -> dict[str, str | int]:
    bits = _mix(index)
    return {
        "first_name": FIRST_NAMES[bits % len(FIRST_NAMES)],
        "city": CITIES[(bits >> 8) % len(CITIES)],
        "age": 18 + (bits >> 16) % 63,
        "tier": TIERS[(bits >> 24) % len(TIERS)],
        "signup_date": (date(2020, 1, 1) + timedelta(days=(bits >> 32) % 2000)).isoformat(),
        "timezone": "UTC",
    }


def _mix(index: int) -> int:
    """splitmix64: well-spread bits from an index, far cheaper than a seeded Random per user."""
    mask = 2**64 - 1
    x = (index + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


@dataclass(frozen=True)
class ImportFile:
    path: Path
    rows: int
    invalid: int
    duplicates: int

    @property
    def valid_unique(self) -> int:
        return self.rows - self.invalid - self.duplicates


def import_csv(rows: int, seed: int = 1, invalid: float = 0.02, duplicates: float = 0.05) -> ImportFile:
    """A CSV of `rows` data rows: about `invalid` of them with a bad phone, `duplicates` repeating an
    earlier row's phone. Written once per (rows, seed) and reused."""
    path = DATA_DIR / f"users_{rows}_s{seed}_{FORMAT}.csv"
    rng = random.Random(seed)
    kinds = [_row_kind(rng, invalid, duplicates) for _ in range(rows)]
    # The first row cannot repeat an earlier one.
    kinds[0] = "valid"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(IMPORT_COLUMNS)
            writer.writerows(_import_rows(kinds, random.Random(seed + 1)))
        tmp.replace(path)
    return ImportFile(path, rows, kinds.count("invalid"), kinds.count("duplicate"))


def _row_kind(rng: random.Random, invalid: float, duplicates: float) -> str:
    draw = rng.random()
    return "invalid" if draw < invalid else "duplicate" if draw < invalid + duplicates else "valid"


def _import_rows(kinds: list[str], rng: random.Random) -> Iterator[list[str]]:
    next_user, valid_users = 0, list[int]()
    for kind in kinds:
        if kind == "duplicate":
            # Only a valid row can be repeated: a repeat of a rejected phone would be a new valid user.
            index = valid_users[rng.randrange(len(valid_users))]
        else:
            index, next_user = next_user, next_user + 1
            if kind == "valid":
                valid_users.append(index)
        attrs = attributes(index)
        number = INVALID_PHONES[index % len(INVALID_PHONES)] if kind == "invalid" else phone(index)
        yield [number, "OPT_IN", *(str(attrs[column]) for column in ATTRIBUTE_COLUMNS)]


def seed_users(database_url: str, first: int, count: int, timezone: str = "UTC") -> None:
    """Opted-in users first..first+count-1 straight into `users` with COPY: setup for the figures that
    measure something else (segments, fan-out, sends), not a measured path."""
    conn = connect(database_url)
    try:
        conn.run(
            "COPY users (phone_e164, attributes, consent_state) FROM STDIN WITH (FORMAT csv)",
            stream=_user_chunks(first, count, timezone),
        )
    finally:
        conn.close()


def _user_chunks(first: int, count: int, timezone: str, chunk: int = 10_000) -> Iterator[str]:
    # Streamed in chunks so a million users never sit in memory at once.
    for start in range(first, first + count, chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for index in range(start, min(start + chunk, first + count)):
            attrs = attributes(index) | {"timezone": timezone}
            writer.writerow([phone(index), json.dumps(attrs, separators=(",", ":")), "OPT_IN"])
        yield buffer.getvalue()
