"""`flask serve`: the dashboard and the alert worker together, as `make run` starts them."""

import os
import signal
import subprocess
import sys
import time

import click
from flask.cli import ScriptInfo

# How long each process gets to finish after the other one stopped or Ctrl-C.
STOP_SECONDS = 10


def _flask(app_path: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", app_path, *args]


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=10,
    show_default=True,
    help="Seconds between the alert worker's passes.",
)
def serve_command(host: str, port: int, interval: float):
    """Serve the dashboard with the alert worker beside it; Ctrl-C stops both."""
    # A monitor that nobody evaluates is silent: stale feeds, pending rules and every
    # notification need the worker, so development runs it too. Both processes write
    # to this terminal; either one ending stops the other.
    app_path = click.get_current_context().ensure_object(ScriptInfo).app_import_path or "app"
    env = dict(os.environ)
    env.setdefault("TRADINGMONITOR_PUBLIC_URL", f"http://{host}:{port}")
    commands = [
        _flask(app_path, "run", "--host", host, "--port", str(port)),
        _flask(app_path, "alerts", "run", "--interval", str(interval)),
    ]
    # Ctrl-C, even when started in the background (which ignores SIGINT), and
    # SIGTERM (a service manager, `kill`) stop both.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    procs: list[subprocess.Popen] = []
    status = 0
    try:
        for command in commands:
            # Our own interpreter and flask with validated options: no shell.
            procs.append(subprocess.Popen(command, env=env))  # noqa: S603
        click.echo(
            f"Serving on http://{host}:{port}/ (web server pid {procs[0].pid}) with the alert "
            f"worker (pid {procs[1].pid}, a pass every {interval:g} s). Ctrl-C stops both."
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.2)
        ended = next(proc for proc in procs if proc.poll() is not None)
        name = "web server" if ended is procs[0] else "alert worker"
        click.echo(f"The {name} exited with {ended.returncode}; stopping the other.", err=True)
        status = ended.returncode or 1
    except KeyboardInterrupt:
        pass
    finally:
        _stop(procs)
    sys.exit(status)
