"""gunicorn settings for Stageboard (docs/deployment.md, "Serving"): `gunicorn config.wsgi` reads this file.

Sync workers, one request at a time each: a worker accepts a connection only when it is free and
closes it after the answer, so requests spread over every worker. Threaded (gthread) workers keep
keep-alive connections open and the first awake worker accepts most of them: under load 14 of 16
clients sat on one worker while the others idled (issue 11). Keep-alive to the browsers is the
proxy's job (it terminates TLS anyway); behind it each request is a new, cheap loopback connection.

Every value can be overridden on the command line or in GUNICORN_CMD_ARGS.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "sync"
# The usual 2 × cores + 1: a sync worker waits on the database part of the time.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# A switch never runs in the web process (the worker runs it), but a large upload or grid can take seconds.
timeout = 120
graceful_timeout = 60
# Recycle each worker after about 1,000 requests, staggered so they never all restart at once:
# bounds any slow growth of memory without a visible pause.
max_requests = 1000
max_requests_jitter = 100
# Not used by sync workers (they close every connection); kept short should someone choose gthread.
keepalive = 2
