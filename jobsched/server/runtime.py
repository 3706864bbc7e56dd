"""Runtime: wires store + backend + controller + service for one $JOBSCHED_HOME."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jobsched.backends import make_backend
from jobsched.server.controller import Controller
from jobsched.server.estimation import Estimator
from jobsched.server.metrics import Metrics
from jobsched.server.service_impl import JobService
from jobsched.spec.queue import default_queue
from jobsched.store.backup import BackupLoop
from jobsched.store.integrity import close_clean, open_checked


class Runtime:
    def __init__(self, home: Path | str, backend: str = "local", backend_options: dict[str, Any] | None = None,
                 policy: str = "jobsched", estimate_timeout: float = 180.0,
                 node_pool: str | Path | None = None, provision_delay: float = 0.0,
                 backup_interval: float = 300.0, backup_keep: int = 5,
                 start_timeout: float = 120.0, max_manifest_bytes: int | None = None) -> None:
        self.home = Path(home).expanduser()
        self.home.mkdir(parents=True, exist_ok=True)
        self.store_path = self.home / "state.db"
        self.store = open_checked(self.home)  # StoreDamaged rather than an empty start over lost state
        self.backups = BackupLoop(self.store_path, self.home, backup_interval, backup_keep)
        self.metrics = Metrics()
        self.clock = time.time
        self.backend = make_backend(backend, home=self.home, **(backend_options or {}))
        provisioning = None
        if node_pool is not None:
            from jobsched.rightsizing.pools import load_pool
            from jobsched.server.provisioning import LocalVirtualProvider, Provisioning
            from jobsched.spec.yamlsafe import load_file

            pool = load_pool(load_file(node_pool), str(node_pool))
            make_provider = getattr(self.backend, "make_node_provider", None)
            provider = make_provider(pool) if make_provider is not None else None
            if provider is None:
                if backend != "local":
                    raise ValueError(f"node_pool: the {backend} backend needs a node provider "
                                     "(--node-provider kwok|karpenter on Kubernetes)")
                provider = LocalVirtualProvider(pool, delay=provision_delay, now=self.clock())
            provisioning = Provisioning(pool, provider, self.clock)
        self.controller = Controller(self.store, self.backend, self.metrics, self.home, self.clock, policy,
                                     provisioning=provisioning, start_timeout=start_timeout)
        self.service = JobService(self.store, self.backend, str(self.home), self.controller.wake, self.clock,
                                  max_manifest_bytes=max_manifest_bytes)
        self.service.health_checks.append(lambda: self.controller.failing)
        self.service.controller = self.controller
        self.estimator = Estimator(self.store, self.controller, self.clock, estimate_timeout)
        if "default" not in self.store.queues():
            self.store.put_queue("default", default_queue().to_manifest())

    def start(self) -> None:
        attach = getattr(self.backend, "attach", None)
        if attach is not None:  # e.g. Kubernetes: import custom resources, mirror submissions
            attach(self.service)
            mirror = getattr(getattr(self.backend, "crsync", None), "create_for", None)
            if mirror is not None:
                self.service.on_submitted.append(mirror)
        self.controller.start()
        self.estimator.start()
        self.backups.start()

    def stop(self) -> None:
        self.estimator.stop()
        self.controller.stop()
        self.backend.close()
        self.backups.stop()
        close_clean(self.store, self.home)
