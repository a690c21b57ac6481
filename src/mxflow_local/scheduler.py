"""The local stand-in for EventBridge schedules: fires scheduled Lambda targets of one runtime.

Supports `rate(N minute|minutes|hour|hours|day|days)` (first firing one period after start, as
EventBridge does) and `cron(min hour day-of-month month day-of-week year)` with `*`, `?`, numbers,
lists (`a,b`), ranges (`a-b`) and steps (`*/n`, `a/n`), evaluated in UTC (named days/months and `L`/`W`/`#`
are not supported: such a schedule is reported and only fires through `fire()`). Targets are Lambda
function ARNs of the runtime; the Input (or, without one, an EventBridge "Scheduled Event" envelope) is
the event. While the Region is stopped nothing fires. `fire(logical_id)` runs a schedule now (tests and
drills do not wait a minute).
"""
from __future__ import annotations

import datetime
import json
import re
import threading
import uuid
from typing import Callable

from mxflow_local.resources import Schedule

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def _cron_field(text: str, low: int, high: int) -> set[int] | None:
    if text in ("*", "?"):
        return set(range(low, high + 1))
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            start, end = (int(x) for x in part.split("-", 1))
        elif part.isdigit():
            start = int(part)
            end = high if step > 1 else start
        else:
            return None
        values |= set(range(start, end + 1, step))
    return values


def cron_matches(expression: str, when: datetime.datetime) -> bool | None:
    """Does the cron expression fire at this minute (UTC)? None when the expression is not supported."""
    match = _CRON.match(expression.strip())
    if not match:
        return None
    fields = match.group(1).split()
    if len(fields) != 6:
        return None
    minute, hour, day, month, weekday, year = fields
    parsed = [_cron_field(minute, 0, 59), _cron_field(hour, 0, 23), _cron_field(day, 1, 31),
              _cron_field(month, 1, 12), _cron_field(weekday, 1, 7), _cron_field(year, 1970, 2199)]
    if any(p is None for p in parsed):
        return None
    minutes, hours, days, months, weekdays, years = parsed
    aws_weekday = when.isoweekday() % 7 + 1   # EventBridge: 1 = Sunday
    return (when.minute in minutes and when.hour in hours and when.day in days and when.month in months
            and aws_weekday in weekdays and when.year in years)


class LocalScheduler:
    def __init__(self, schedules: list[Schedule], invoke: Callable[[str, dict], object],
                 available: Callable[[], bool], region: str, account_id: str):
        self.schedules = schedules
        self._invoke = invoke            # (function ARN, event) -> anything
        self._available = available
        self.region, self.account_id = region, account_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired: dict[str, int] = {}
        self.unsupported = [s.logical_id for s in schedules
                            if rate_seconds(s.expression) is None
                            and cron_matches(s.expression, datetime.datetime.now(datetime.timezone.utc)) is None]

    def event_for(self, schedule: Schedule) -> dict:
        if schedule.input is not None:
            return json.loads(schedule.input)
        return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                "account": self.account_id, "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.region, "resources": [f"arn:aws:events:{self.region}:{self.account_id}:rule/{schedule.logical_id}"],
                "detail": {}}

    def fire(self, logical_id: str) -> list[object]:
        """Run every target of a schedule now; returns what each invocation gave."""
        targets = [s for s in self.schedules if s.logical_id == logical_id]
        if not targets:
            raise KeyError(f"no schedule {logical_id}; known: {sorted({s.logical_id for s in self.schedules})}")
        results = []
        for schedule in targets:
            if not self._available():
                continue
            self.fired[logical_id] = self.fired.get(logical_id, 0) + 1
            results.append(self._invoke(schedule.target_arn, self.event_for(schedule)))
        return results

    def start(self) -> None:
        if self._thread is None and self.schedules:
            self._thread = threading.Thread(target=self._loop, daemon=True, name=f"scheduler-{self.region}")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        started = datetime.datetime.now(datetime.timezone.utc)
        next_rate: dict[int, datetime.datetime] = {}
        last_minute = None
        while not self._stop.wait(1.0):
            now = datetime.datetime.now(datetime.timezone.utc)
            minute = now.replace(second=0, microsecond=0)
            for index, schedule in enumerate(self.schedules):
                if not schedule.enabled or not self._available():
                    continue
                period = rate_seconds(schedule.expression)
                if period is not None:
                    due = next_rate.setdefault(index, started + datetime.timedelta(seconds=period))
                    if now >= due:
                        next_rate[index] = due + datetime.timedelta(seconds=period)
                        self._run(schedule)
                elif minute != last_minute and cron_matches(schedule.expression, minute):
                    self._run(schedule)
            last_minute = minute

    def _run(self, schedule: Schedule) -> None:
        self.fired[schedule.logical_id] = self.fired.get(schedule.logical_id, 0) + 1
        try:
            self._invoke(schedule.target_arn, self.event_for(schedule))
        except Exception:  # noqa: BLE001 - a failing target must not stop the scheduler (EventBridge retries)
            pass
