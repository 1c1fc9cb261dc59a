"""gunicorn settings for TradingMonitor: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment (the systemd unit sets them), so
the same file serves one SQLite host and several PostgreSQL hosts.
"""

import os
import tempfile

# Loopback only: nginx is the one way in. A unix socket works too
# (GUNICORN_BIND=unix:/run/tradingmonitor/gunicorn.sock).
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

# Sync workers: requests are short and database-bound. With SQLite keep it to a few
# (one writer at a time); with PostgreSQL the usual 2 * cores + 1.
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
# The app checks that its rate-limit counters are shared when there are several
# workers (TRADINGMONITOR_RATELIMIT_STORAGE_URI=redis://…), and warns if not.
os.environ["TRADINGMONITOR_WEB_WORKERS"] = str(workers)
worker_class = "sync"

# A request that takes longer than this is stuck: the worker is killed and replaced.
# nginx's proxy timeouts are longer, so nginx never gives up before gunicorn does.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (systemctl stop/restart) workers finish the requests they hold.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5

# The app is loaded once in the master and forked: less memory, faster restarts of
# workers. Database connections are opened lazily, in each worker.
preload_app = True

# Logs go to stderr (journald under systemd). Point them at files with
# GUNICORN_ACCESS_LOG / GUNICORN_ERROR_LOG; `kill -USR1` reopens them after logrotate.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The request id nginx sets ties an access-log line to the app's log lines.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms id=%({x-request-id}i)s'

# Client addresses come from nginx's X-Forwarded-For, read by the app's ProxyFix
# (TRADINGMONITOR_PROXY_FIX_X_FOR = number of proxies); gunicorn itself trusts none.
forwarded_allow_ips = ""
proc_name = "tradingmonitor"

# /metrics under several workers: each writes its counters to files here and a
# scrape adds them up (prometheus-client's multiprocess mode). Set before the app
# is loaded; the systemd unit points it at a runtime directory emptied on stop.
metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tradingmonitor-metrics-")
)
os.makedirs(metrics_dir, exist_ok=True)


def child_exit(server, worker):
    """Fold a finished worker's gauges away; its counters stay in the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
