"""The Celery app of the push tests, built from a commlink configuration
file the way a host would (``config_factories``):
``python -m celery -A push_worker_app worker`` runs the syncs and
``commlink watch CONFIG --app push_worker_app:tasks`` holds the push
connections.

Besides the variables of ``celery_worker_app`` (broker, key prefix, queue),
``COMMLINK_IT_CONFIG`` names the configuration file.
"""

from __future__ import annotations

import os

from celery import Celery

from commlink.cli.watch import config_factories
from commlink.contrib.celery import CommlinkTasks, install


def build() -> tuple[Celery, CommlinkTasks]:
    env = os.environ
    app = Celery("commlink_push_it")
    app.conf.update(
        broker_url=env["COMMLINK_IT_BROKER"],
        broker_transport_options={
            "global_keyprefix": env["COMMLINK_IT_PREFIX"],
            "visibility_timeout": 30,
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=env["COMMLINK_IT_QUEUE"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    return app, install(app, **config_factories(env["COMMLINK_IT_CONFIG"]))


if "COMMLINK_IT_CONFIG" in os.environ:
    app, tasks = build()
