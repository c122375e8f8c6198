#!/usr/bin/env python3
"""An independent reference for Quartz cron next-fire times, used to derive the expected
values of Tests/QScheduleAgentTests/CronTableTests.swift.

It shares no code with the Swift engine: it walks calendar days with Python's datetime and
zoneinfo, tests each day against the day-of-month / day-of-week rules written out from the
Quartz documentation, and applies qagent's DST rule by its definition: a matching wall
time W fires at the first instant whose wall clock shows W or later. So an ambiguous wall
time (fall-back overlap) fires at its first occurrence and never again, and a wall time in a
spring-forward gap fires at the transition (02:30 in New York's gap fires at 03:00 EDT).
"Shows" is computed from zoneinfo's UTC offsets, instant by instant where it matters.

Usage: python3 Tests/Tools/cron_oracle.py > /tmp/table.swift   (prints the Swift table)
"""
import calendar
import datetime as dt
from zoneinfo import ZoneInfo

MONTHS = dict(JAN=1, FEB=2, MAR=3, APR=4, MAY=5, JUN=6, JUL=7, AUG=8, SEP=9, OCT=10, NOV=11, DEC=12)
DAYS = dict(SUN=1, MON=2, TUE=3, WED=4, THU=5, FRI=6, SAT=7)


def values(text, lo, hi, names=None, wraps=True):
    out = set()
    for item in text.upper().split(","):
        base, _, step = item.partition("/")
        step = int(step) if step else 1
        def num(t):
            return names[t] if names and t in names else int(t)
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            a, b = (num(x) for x in base.split("-"))
        else:
            a = num(base)
            b = hi if "/" in item else a
        v, width = a, hi - lo + 1
        span = (b - a) if b >= a else (b + width - a)
        for k in range(0, span + 1, step):
            x = a + k
            if x > hi:
                x -= width
            out.add(x)
    return out


def quartz_weekday(d):
    # Python: Monday=0 ... Sunday=6; Quartz: Sunday=1 ... Saturday=7
    return (d.weekday() + 1) % 7 + 1


def day_matches(d, dom, dow):
    length = calendar.monthrange(d.year, d.month)[1]
    if dow == "?":
        f = dom.upper()
        if f == "L":
            return d.day == length
        if f.startswith("L-") and f.endswith("W"):
            # the weekday nearest to (last day - n), within the month
            n = length - int(f[2:-1])
            if n < 1:
                return False
            # a weekday itself; a Saturday -> Friday (or Monday when Friday is in the previous month);
            # a Sunday -> Monday (or Friday when Monday is in the next month)
            wd = quartz_weekday(dt.date(d.year, d.month, n))
            if wd not in (1, 7):
                target = n
            elif wd == 7:
                target = n - 1 if n > 1 else n + 2
            else:
                target = n + 1 if n < length else n - 2
            return d.day == target
        if f.startswith("L-"):
            return d.day == length - int(f[2:])
        if f == "LW":
            last = dt.date(d.year, d.month, length)
            wd = quartz_weekday(last)
            target = length - 1 if wd == 7 else length - 2 if wd == 1 else length
            return d.day == target
        if f.endswith("W"):
            n = int(f[:-1])
            if n > length:
                return False
            wd = quartz_weekday(dt.date(d.year, d.month, n))
            if wd == 7:
                target = 3 if n == 1 else n - 1
            elif wd == 1:
                target = n - 2 if n == length else n + 1
            else:
                target = n
            return d.day == target
        return d.day in values(f, 1, 31)
    f = dow.upper()
    wd = quartz_weekday(d)
    if f == "L":
        return wd == 7
    if f.endswith("L"):
        n = DAYS.get(f[:-1]) or int(f[:-1])
        return wd == n and d.day + 7 > length
    if "#" in f:
        a, k = f.split("#")
        n = DAYS.get(a) or int(a)
        return wd == n and (d.day - 1) // 7 + 1 == int(k)
    return wd in values(f, 1, 7, DAYS)


def offset(zone, ts):
    return int(dt.datetime.fromtimestamp(ts, zone).utcoffset().total_seconds())


def wall_seconds(zone, ts):
    """The wall time at instant ts, as seconds on a naive UTC clock."""
    return ts + offset(zone, ts)


def latest_wall(zone, after):
    """The latest wall time shown at any instant <= after (looks back two days: the clock
    only goes back at a fall-back; the latest wall before it is just before the transition)."""
    best = wall_seconds(zone, after)
    t = after - 2 * 86400
    while t < after:
        nxt = min(t + 600, after)
        if offset(zone, nxt) < offset(zone, t):
            lo, hi = t, nxt  # offset(lo) > offset(hi): find the last second before the drop
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(zone, mid) == offset(zone, lo):
                    lo = mid
                else:
                    hi = mid
            best = max(best, wall_seconds(zone, lo))
        t = nxt
    return best


def first_instant(zone, wall):
    """min{t : wall_seconds(t) >= wall}, by walking second by second from a point whose wall
    time is surely earlier (wall_seconds is not monotonic in an overlap: no bisection)."""
    epoch = dt.datetime(1970, 1, 1)
    w = int((wall - epoch).total_seconds())
    t = w - max(offset(zone, w - 86400), offset(zone, w + 86400)) - 4 * 3600
    while wall_seconds(zone, t) >= w:
        t -= 3600
    while wall_seconds(zone, t) < w:
        t += 1
    return t


def next_fire(expr, after_ms, tz):
    zone = ZoneInfo(tz)
    f = expr.split()
    secs = sorted(values(f[0], 0, 59))
    mins = sorted(values(f[1], 0, 59))
    hours = sorted(values(f[2], 0, 23))
    months = values(f[4], 1, 12, MONTHS)
    years = values(f[6], 1970, 2099, wraps=False) if len(f) == 7 else set(range(1970, 2100))
    after = after_ms // 1000
    start = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=latest_wall(zone, after) + 1)
    day = start.date()
    while day.year <= 2099:
        if day.year in years and day.month in months and day_matches(day, f[3], f[5]):
            for h in hours:
                for m in mins:
                    for s in secs:
                        wall = dt.datetime(day.year, day.month, day.day, h, m, s)
                        if wall < start:
                            continue
                        return first_instant(zone, wall) * 1000
        day += dt.timedelta(days=1)
    return None


def iso(ms, tz):
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).isoformat()


if __name__ == "__main__":
    import json, sys
    cases = json.load(open(sys.argv[1]))
    for expr, after, tz, comment in cases:
        after_ms = after if isinstance(after, int) else int(dt.datetime.fromisoformat(after).timestamp() * 1000)
        got = next_fire(expr, after_ms, tz)
        exp = "nil" if got is None else str(got)
        human = "never" if got is None else iso(got, tz)
        print(f'        // {comment} -> {human}')
        print(f'        ("{expr}", {after_ms}, "{tz}", {exp}),')
