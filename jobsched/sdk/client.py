"""The Python SDK: ``from jobsched import Client``.

>>> c = Client()                                  # JOBSCHED_URL, else the local server (autostarted)
>>> st = c.submit("job.yaml")                     # or a TrainingJob, or a manifest dict
>>> st = c.wait(st.name, on_update=print)         # returns once Succeeded/Failed/Cancelled
>>> print(c.logs(st.name))
"""

from __future__ import annotations

import builtins
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote

import httpx

from jobsched.sdk.errors import (
    ConflictError,
    Forbidden,
    InvalidSpec,
    JobschedError,
    NotFoundError,
    ServerUnreachable,
    Unauthorized,
    WaitTimeout,
)
from jobsched.server.auth import default_home, default_local_url, read_client_token
from jobsched.spec.api import (
    DryRunResult,
    EventInfo,
    JobList,
    JobStatus,
    JobSummary,
    NodeStatus,
    QueueStatus,
    ServerInfo,
)

# The manifest models, YAML and the daemon are imported where used: `jobsched list` and `status`
# never need them, and a command's start-up time is mostly imports.
if TYPE_CHECKING:  # pragma: no cover
    from typing import TypeAlias

    from jobsched.sdk.admin import AdminAPI
    from jobsched.sdk.workflows import WorkflowsAPI
    from jobsched.spec.job import TrainingJob
    from jobsched.spec.queue import Queue

JobLike: TypeAlias = "TrainingJob | dict[str, Any] | str | Path"
QueueLike: TypeAlias = "Queue | dict[str, Any] | str | Path"
AUTOSTART_TIMEOUT = 60.0
DELETE_TIMEOUT = 90.0  # the server waits up to 60 s for a running job's replicas to stop


def _is_training_job(manifest: dict[str, Any]) -> bool:
    """Validated locally; other kinds (Kubeflow PyTorchJob/MXJob) are converted by the server."""
    return bool(manifest.get("kind", "TrainingJob") == "TrainingJob")


def _working_dir_from_file(manifest: dict[str, Any], base: Path) -> None:
    """A manifest file's empty ``workingDir`` is the file's own directory, and a relative one is
    relative to it, as an absolute path: the replicas run, and the server imports the job's factory,
    where the user's code lives. Not for a job with a container ``image``: its code is in the image."""
    spec = manifest.get("spec")
    tpl = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(tpl, dict) or tpl.get("image"):
        return  # (a malformed manifest: validation names the field)
    key = "working_dir" if "working_dir" in tpl else "workingDir"
    if tpl.get(key) is not None and not isinstance(tpl[key], str):
        return
    tpl[key] = os.path.normpath(base / os.path.expanduser(tpl[key])) if tpl.get(key) else str(base)


def _path(namespace: str, name: str, *rest: str) -> str:
    return "/".join(["/v1/jobs", quote(namespace, safe=""), quote(name, safe=""), *rest])


class Client:
    """A client of one jobsched server.

    ``url``: the server (default ``JOBSCHED_URL``, else ``http://127.0.0.1:$JOBSCHED_PORT``, port
    8470). ``token``: default ``JOBSCHED_TOKEN``, else ``<home>/token``. ``home``: default
    ``JOBSCHED_HOME`` or ``~/.jobsched``. ``autostart``: when the URL is the default local one and
    nothing answers, start a server for ``home`` in the background (said on stderr). ``ca_file``:
    CA certificates for an ``https://`` URL (default ``JOBSCHED_CA_FILE``, else the system's).
    """

    def __init__(self, url: str | None = None, token: str | None = None,
                 home: str | Path | None = None, autostart: bool = True, timeout: float = 30.0,
                 ca_file: str | Path | None = None) -> None:
        from jobsched.sdk.admin import tls_verify

        self.home = Path(home).expanduser() if home else default_home()
        env_url = os.environ.get("JOBSCHED_URL")
        try:
            self.url = (url or env_url or default_local_url()).rstrip("/")
        except ValueError as e:  # a bad JOBSCHED_PORT
            raise InvalidSpec(str(e)) from None
        self.autostart = autostart and not url and not env_url
        self._token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout, verify=tls_verify(ca_file))

    # -- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        token = self._token or read_client_token(self.home)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _ping(self) -> bool:
        try:
            self._http.get("/healthz", timeout=2.0)
        except httpx.TransportError:
            return False
        return True

    def _start_local_server(self) -> None:
        from jobsched.server import daemon

        with daemon.autostart_lock(self.home):
            if self._ping():  # another client started it meanwhile
                return
            port = httpx.URL(self.url).port or 8470
            proc = daemon.spawn(self.home, port)
            print(f"jobsched: no server at {self.url}; started one in the background for {self.home} "
                  f"(pid {proc.pid}, log {self.home / daemon.LOG_FILE})", file=sys.stderr)
            deadline = time.monotonic() + AUTOSTART_TIMEOUT
            while not self._ping():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ServerUnreachable(
                        f"the autostarted server for {self.home} did not come up "
                        f"(exit code {proc.poll()}); its log:\n{daemon.log_tail(self.home)}")
                time.sleep(0.1)

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, headers=self._headers(), **kw)
        except httpx.ConnectError as e:
            if not self.autostart:
                raise ServerUnreachable(f"no jobsched server at {self.url}: {e}") from None
            self._start_local_server()
            self.autostart = False  # once is enough
            return self._request(method, path, **kw)
        except httpx.TransportError as e:
            raise ServerUnreachable(f"jobsched server at {self.url}: {e}") from None
        self._check(resp)
        return resp

    def _check(self, resp: httpx.Response) -> None:
        if resp.is_success:
            return
        try:
            body = resp.json()
            detail = str(body.get("detail", resp.text)) if isinstance(body, dict) else resp.text
        except ValueError:
            detail = resp.text
        code = resp.status_code
        if code == 401:
            raise Unauthorized(f"{self.url}: {detail} (the token comes from JOBSCHED_TOKEN or "
                               f"{self.home / 'token'})")
        if code == 403:
            raise Forbidden(detail)
        if code == 404:
            raise NotFoundError(detail)
        if code == 409:
            raise ConflictError(detail)
        if code in (400, 413, 422):  # 413: a request body over the server's --max-body
            raise InvalidSpec(detail)
        raise JobschedError(f"HTTP {code} from {self.url}: {detail}")

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, job: JobLike) -> JobStatus:
        """Submit a TrainingJob (model, manifest dict, or path to a YAML file), validated locally
        first; returns its status (Pending). Kubeflow PyTorchJob/MXJob manifests are converted by
        the server (as are batch/v1 Jobs, Pods, Volcano Jobs: ``submit_file`` for a file of several).
        ``metadata.generateName`` instead of a name: the server picks a free name."""
        manifest = self._manifest(job)
        return JobStatus.model_validate(self._request("POST", "/v1/jobs", json=manifest).json())

    def submit_file(self, path: str | Path) -> builtins.list[JobStatus]:
        """Submit every job of a YAML file (documents separated by '---', each of any accepted kind:
        docs/migrating.md); all are validated before the first is sent."""
        from jobsched.sdk.multidoc import job_manifests

        return [self.submit(m) for m in job_manifests(path)]

    def apply_queues(self, path: str | Path) -> tuple[builtins.list[QueueStatus], builtins.list[str]]:
        """Apply every queue of a YAML file (jobsched Queues, Kueue ClusterQueue + LocalQueue, Volcano
        Queues, converted); returns the queues and the conversion's warnings."""
        from jobsched.sdk.multidoc import apply_file

        return apply_file(self, path)

    def dry_run(self, job: JobLike) -> DryRunResult:
        """What submitting the job would do (validation, memory and why, never-fits, quota, where
        it would start); nothing is stored (``POST /v1/jobs?dryRun=true``)."""
        manifest = self._manifest(job)
        resp = self._request("POST", "/v1/jobs", json=manifest, params={"dryRun": "true"})
        return DryRunResult.model_validate(resp.json())

    def delete(self, name: str, namespace: str = "default") -> JobStatus:
        """Cancel the job if it runs, wait until it stopped, then remove it with its attempts,
        events, logs and checkpoints; returns its last status."""
        resp = self._request("DELETE", _path(namespace, name), timeout=DELETE_TIMEOUT)
        return JobStatus.model_validate(resp.json())

    def _manifest(self, job: JobLike) -> dict[str, Any]:
        from jobsched.sdk.manifest import load_yaml, validate
        from jobsched.spec.job import TrainingJob

        if isinstance(job, TrainingJob):
            manifest: dict[str, Any] = job.to_manifest()
        elif isinstance(job, dict):
            manifest = job
            if _is_training_job(manifest):
                validate(TrainingJob, manifest)
        else:
            manifest, node = load_yaml(job)
            if _is_training_job(manifest):  # workingDir first: a relative one is validated absolute
                _working_dir_from_file(manifest, Path(job).resolve().parent)
                validate(TrainingJob, manifest, job, node)
        return manifest

    def get(self, name: str, namespace: str = "default") -> JobStatus:
        return JobStatus.model_validate(self._request("GET", _path(namespace, name)).json())

    def list_page(self, namespace: str | None = None, phase: str | None = None, queue: str | None = None,
                  limit: int = 500, continue_: str | None = None) -> JobList:
        """One page of job summaries (``get`` has the whole status); ``continue_``: the previous
        page's ``continue_`` token, with the same filters. ``.remaining``: jobs after this page."""
        params: dict[str, Any] = {k: v for k, v in (("namespace", namespace), ("phase", phase), ("queue", queue),
                                                   ("continue", continue_)) if v}
        params["limit"] = limit
        return JobList.model_validate(self._request("GET", "/v1/jobs", params=params).json())

    def iter_jobs(self, namespace: str | None = None, phase: str | None = None, queue: str | None = None,
                  page_size: int = 500) -> Iterator[JobSummary]:
        """Every matching job, one page (``page_size`` jobs) per request."""
        token: str | None = None
        while True:
            page = self.list_page(namespace, phase, queue, page_size, token)
            yield from page.items
            token = page.continue_
            if token is None:
                return

    def list(self, namespace: str | None = None, phase: str | None = None,
             queue: str | None = None) -> builtins.list[JobSummary]:
        """Every matching job as a summary, fetched page by page."""
        return builtins.list(self.iter_jobs(namespace, phase, queue))

    def cancel(self, name: str, namespace: str = "default") -> JobStatus:
        return JobStatus.model_validate(self._request("POST", _path(namespace, name, "cancel")).json())

    def events(self, name: str, namespace: str = "default") -> builtins.list[EventInfo]:
        data = self._request("GET", _path(namespace, name, "events")).json()
        return [EventInfo.model_validate(e) for e in data]

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.5,
             on_update: Callable[[JobStatus], None] | None = None, namespace: str = "default") -> JobStatus:
        """Poll until the job is Succeeded, Failed or Cancelled. ``on_update`` is called with the
        status whenever phase, attempt or reason changes. Raises WaitTimeout after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: tuple[Any, ...] | None = None
        while True:
            st = self.get(name, namespace)
            key = (st.phase, len(st.attempts), st.reason, st.attempts[-1].reason if st.attempts else None)
            if key != last and on_update is not None:
                on_update(st)
            last = key
            if st.phase.is_terminal():
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"{namespace}/{name} still {st.phase} after {timeout} s")
            time.sleep(poll)

    def _logs_chunk(self, namespace: str, name: str, replica: int | None, attempt: int | None,
                    offset: int) -> tuple[str, int, bool]:
        params = {k: v for k, v in (("replica", replica), ("attempt", attempt)) if v is not None}
        resp = self._request("GET", _path(namespace, name, "logs"), params={**params, "offset": offset})
        return (resp.text, int(resp.headers.get("X-Next-Offset", offset + len(resp.content))),
                resp.headers.get("X-Job-Terminal") == "true")

    def log_chunk(self, name: str, offset: int = 0, replica: int | None = None, attempt: int | None = None,
                  namespace: str = "default") -> tuple[str, int, bool]:
        """The log text from ``offset``, the offset to ask for next, and whether the job has ended
        (to follow several things at once, e.g. the logs under ``jobsched run --wait --follow``)."""
        return self._logs_chunk(namespace, name, replica, attempt, offset)

    @overload
    def logs(self, name: str, replica: int | None = None, attempt: int | None = None,
             follow: Literal[False] = False, namespace: str = "default", poll: float = 0.5) -> str: ...

    @overload
    def logs(self, name: str, replica: int | None = None, attempt: int | None = None, *,
             follow: Literal[True], namespace: str = "default", poll: float = 0.5) -> Iterator[str]: ...

    def logs(self, name: str, replica: int | None = None, attempt: int | None = None,
             follow: bool = False, namespace: str = "default", poll: float = 0.5) -> str | Iterator[str]:
        """The log text (all replicas prefixed ``[rank N]`` unless ``replica`` is given; the latest
        attempt unless ``attempt`` is). ``follow=True``: an iterator of chunks until the job ends."""
        if not follow:
            return self._logs_chunk(namespace, name, replica, attempt, 0)[0]
        return self._follow(namespace, name, replica, attempt, poll)

    def _follow(self, namespace: str, name: str, replica: int | None, attempt: int | None,
                poll: float) -> Iterator[str]:
        offset = 0
        while True:
            text, offset, terminal = self._logs_chunk(namespace, name, replica, attempt, offset)
            if text:
                yield text
            elif terminal:
                return
            else:
                time.sleep(poll)

    # -- workflows (jobsched.sdk.workflows) -------------------------------------------------
    @property
    def workflows(self) -> WorkflowsAPI:
        """Argo Workflows on this server: ``client.workflows.submit("pipeline.yaml")``."""
        from jobsched.sdk.workflows import WorkflowsAPI

        return WorkflowsAPI(self)

    @property
    def admin(self) -> AdminAPI:
        """Tokens and the audit log (admin token): ``client.admin.create_token("alice", ...)``."""
        from jobsched.sdk.admin import AdminAPI

        return AdminAPI(self)

    # -- queues, nodes, server --------------------------------------------------------------
    def queues(self) -> builtins.list[QueueStatus]:
        return [QueueStatus.model_validate(q) for q in self._request("GET", "/v1/queues").json()]

    def apply_queue(self, queue: QueueLike) -> QueueStatus:
        """Create or update a Queue (model, manifest dict, or path to a YAML file)."""
        from jobsched.sdk.manifest import load_manifest, validate
        from jobsched.spec.queue import Queue

        if isinstance(queue, Queue):
            manifest: dict[str, Any] = queue.to_manifest()
        elif isinstance(queue, dict):
            validate(Queue, queue)
            manifest = queue
        else:
            _, manifest = load_manifest(Queue, queue)
        return QueueStatus.model_validate(self._request("PUT", "/v1/queues", json=manifest).json())

    def nodes(self) -> builtins.list[NodeStatus]:
        return [NodeStatus.model_validate(n) for n in self._request("GET", "/v1/nodes").json()]

    def info(self) -> ServerInfo:
        return ServerInfo.model_validate(self._request("GET", "/v1/info").json())

    def dashboard_login_url(self) -> str:
        """A one-time URL that logs a browser in to this server's web dashboard (valid about a
        minute, single use; the token itself never appears in it)."""
        return self.url + str(self._request("POST", "/v1/dashboard/login").json()["path"])
