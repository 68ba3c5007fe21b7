"""The Celery app ``push_latency.py`` starts workers with (``celery -A push_worker``)
and points ``commlink watch --app push_worker:tasks`` at: tasks built from
the configuration file in ``COMMLINK_BENCH_CONFIG``, on the Redis broker
``COMMLINK_BENCH_BROKER`` under the key prefix ``COMMLINK_BENCH_PREFIX``.
"""

from __future__ import annotations

import os

from celery import Celery

from commlink.cli.watch import config_factories
from commlink.contrib.celery import install

app = Celery("commlink_push_bench")
app.conf.update(
    broker_url=os.environ.get("COMMLINK_BENCH_BROKER", "redis://127.0.0.1:6379/0"),
    broker_transport_options={"global_keyprefix": os.environ.get("COMMLINK_BENCH_PREFIX", "")},
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ.get("COMMLINK_BENCH_QUEUE", "commlink-bench"),
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)
tasks = install(app, **config_factories(os.environ["COMMLINK_BENCH_CONFIG"]))
