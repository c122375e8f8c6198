"""Celery's side of Benchmarks/peers.sh: a no-op task through Redis (broker and result backend).

  celery -A celery_bench worker -c 2 -P prefork     # the worker
  python celery_bench.py flood SECONDS               # send noop.delay() for SECONDS, wait until every
                                                     # result is stored; prints "sent completed seconds"
"""
import os
import sys
import time

import redis
from celery import Celery

BROKER = os.environ.get("CELERY_BROKER", "redis://127.0.0.1:6390/0")
BACKEND = os.environ.get("CELERY_BACKEND", "redis://127.0.0.1:6390/1")
app = Celery("celery_bench", broker=BROKER, backend=BACKEND)
app.conf.worker_prefetch_multiplier = 4
app.conf.worker_hijack_root_logger = False


@app.task
def noop():
    return None


def flood(seconds):
    results = redis.Redis.from_url(BACKEND)
    results.flushdb()
    noop.delay().get(timeout=30)  # warm: the worker answers
    results.flushdb()
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        noop.delay()
        sent += 1
    # Every result stored in the backend = every task ran (one key per task).
    while results.dbsize() < sent:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    print(sent, results.dbsize(), "%.3f" % elapsed)


if __name__ == "__main__" and sys.argv[1:2] == ["flood"]:
    flood(float(sys.argv[2]))
