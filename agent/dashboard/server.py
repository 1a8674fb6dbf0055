"""Serving the dashboard: in the foreground (``make dashboard``) or in a thread beside the loop (``make run``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import uvicorn
from loguru import logger

from agent.config import Settings
from agent.dashboard.app import create_app
from agent.dashboard.routes.controls import control_policy


@dataclass
class DashboardServer:
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return url_of(self.server.config.host, self.port)

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        for s in servers:
            for sock in s.sockets:
                return sock.getsockname()[1]
        return self.server.config.port

    def close(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def uvicorn_config(settings: Settings, port: int | None = None, app: Any | None = None) -> uvicorn.Config:
    d = settings.dashboard
    return uvicorn.Config(app or create_app(settings), host=d.bind, port=d.port if port is None else port,
                          log_level="warning", access_log=False, lifespan="off")


def announce(settings: Settings, url: str) -> None:
    policy = control_policy(settings)
    controls = "kill-switch controls on" if policy.enabled else "read-only: kill-switch controls off"
    logger.info("dashboard: {} ({}; {})", url, controls, policy.why)
    if not settings.dashboard.loopback:
        logger.warning("dashboard: {} is not loopback; anyone on the network can read the agent's decisions",
                       settings.dashboard.bind)


def serve_in_thread(settings: Settings, port: int | None = None, timeout: float = 10.0,
                    app: Any | None = None) -> DashboardServer | None:
    """Start the dashboard beside the loop (port 0: any free port). None, logged, if it cannot start:
    the loop runs on without it. ``app``: an app already made (tests give one with a fixed clock)."""
    server = uvicorn.Server(uvicorn_config(settings, port, app))
    server.install_signal_handlers = lambda: None  # the loop owns SIGINT/SIGTERM  (uvicorn < 0.29)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    waited = 0.0
    while not server.started and thread.is_alive() and waited < timeout:
        thread.join(0.05)
        waited += 0.05
    if not server.started:
        server.should_exit = True
        logger.error("dashboard: cannot serve on {}:{}; the loop runs without it", settings.dashboard.bind,
                     settings.dashboard.port if port is None else port)
        return None
    running = DashboardServer(server, thread)
    announce(settings, running.url)
    return running
