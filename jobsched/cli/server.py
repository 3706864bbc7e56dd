"""``jobsched server`` (run it in the foreground), ``server stop`` and ``server status``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from jobsched.cli.output import EXIT_INVALID, EXIT_UNREACHABLE, fail

# The store in the home is damaged (missing, empty, truncated, corrupt, lost its WAL): nothing was
# started or changed; --repair, --reset or --restore-backup is the way out (docs/architecture.md).
EXIT_STORE_DAMAGED = 5

server_app = typer.Typer(help="Run the jobsched server (scheduler + backend + HTTP API), or manage it.",
                         invoke_without_command=True)

HOME = typer.Option(None, "--home", help="State directory (default: $JOBSCHED_HOME or ~/.jobsched).")


class Backend(StrEnum):
    local = "local"
    kubernetes = "kubernetes"
    ray = "ray"


def _home(home: Path | None, ctx: typer.Context | None = None) -> Path:
    from jobsched.server.auth import default_home

    if home is None and ctx is not None and ctx.parent is not None:
        home = ctx.parent.params.get("home")
    return (home or default_home()).expanduser()


@server_app.callback()
def server(ctx: typer.Context, home: Path | None = HOME,
           host: str = typer.Option("127.0.0.1", help="Address to listen on."),
           port: int | None = typer.Option(None, help="Port (default: $JOBSCHED_PORT or 8470)."),
           backend: Backend = typer.Option(Backend.local, help="Where replicas run."),
           ray_address: str | None = typer.Option(None, help="Ray cluster address (--backend ray)."),
           kubeconfig: Path | None = typer.Option(None, help="kubeconfig (--backend kubernetes)."),
           context: str | None = typer.Option(None, help="kubeconfig context (--backend kubernetes)."),
           node_pool: Path | None = typer.Option(None, help="Node-pool YAML: instance types the "
                                                 "provisioner may add when gangs pend for capacity."),
           provision_delay: float = typer.Option(0.0, help="Seconds before a provisioned node appears "
                                                 "(local virtual nodes)."),
           policy: str = typer.Option("jobsched", help="Placement policy (jobsched, bestfit, fgd, ...)."),
           node_provider: str | None = typer.Option(None, help="kwok | karpenter: how nodes are added "
                                                    "on Kubernetes (with --node-pool)."),
           node_class: str | None = typer.Option(None, help="Karpenter NodeClass group/kind/name "
                                                 "(--node-provider karpenter)."),
           ttl_after_finished: int | None = typer.Option(None, help="Seconds after a job finishes "
                                                         "before its pods and Service are deleted, unless "
                                                         "its spec.ttlSecondsAfterFinished says otherwise "
                                                         "(--backend kubernetes; default: kept until the "
                                                         "job is deleted)."),
           watch_kubeflow: bool = typer.Option(False, help="Schedule the cluster's PyTorchJob, MXJob and "
                                               "TFJob objects (their CRDs installed) as gangs and write their "
                                               "status, instead of the training-operator (--backend kubernetes)."),
           watch_volcano: bool = typer.Option(False, help="Schedule the cluster's Volcano Job objects (their "
                                              "CRD installed) as gangs and write their status, instead of "
                                              "Volcano (--backend kubernetes)."),
           watch_jobs: bool = typer.Option(False, help="Schedule the cluster's batch/v1 Jobs whose "
                                           "spec.managedBy is jobsched.io/scheduler as gangs and write their "
                                           "status (--backend kubernetes)."),
           local_nodes: Path | None = typer.Option(None, help="YAML list of virtual nodes to split this "
                                                   "machine into: [{name, cpu, memory, gpus, gpuModel, gpuMemory, labels}] "
                                                   "(--backend local)."),
           tls_cert: Path | None = typer.Option(None, help="TLS certificate (PEM): serve HTTPS."),
           tls_key: Path | None = typer.Option(None, help="TLS private key (PEM), with --tls-cert."),
           insecure_http: bool = typer.Option(False, help="Serve plain HTTP on a --host other than "
                                              "loopback (a warning; tokens cross the network in clear)."),
           repair: bool = typer.Option(False, "--repair", help="Rebuild a damaged store from what can "
                                       "be read (and the newest backup), keeping the damaged file aside; then serve."),
           reset: bool = typer.Option(False, "--reset", help="Start with an empty store, keeping the "
                                      "old one aside as state.db.broken-TIME; then serve."),
           restore_backup: Path | None = typer.Option(None, "--restore-backup", help="Put this backup "
                                                      "(e.g. HOME/backups/state-*.db) in place of the store, keeping the old one aside; then serve."),
           backup_interval: float = typer.Option(300.0, help="Seconds between online backups of the "
                                                 "store to HOME/backups (0: none)."),
           backup_keep: int = typer.Option(5, help="How many backups to keep."),
           max_body: int = typer.Option(1 << 20, help="Largest request body in bytes (413 beyond)."),
           max_loop_items: int | None = typer.Option(None, help="Items per workflow loop (withItems, "
                                                     "withParam, withSequence); more is an error "
                                                     "naming the field. Default 10000 "
                                                     "($JOBSCHED_MAX_LOOP_ITEMS)."),
           max_live_steps: int | None = typer.Option(None, help="Workflow step jobs in flight at once "
                                                     "on this server; loops expand as earlier steps "
                                                     "finish. Default 500 ($JOBSCHED_MAX_LIVE_STEPS)."),
           ) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT."""
    if ctx.invoked_subcommand is not None:
        return
    from jobsched.cli.exposure import check_exposure
    from jobsched.server.auth import default_port
    from jobsched.server.main import ServerStartError, StoreDamaged, configure_logging, serve

    tls = check_exposure(host, tls_cert, tls_key, insecure_http)
    options: dict[str, str] = {}
    if ray_address:
        if backend is not Backend.ray:
            fail("--ray-address: only with --backend ray")
        options["address"] = ray_address
    if kubeconfig:
        if backend is not Backend.kubernetes:
            fail("--kubeconfig: only with --backend kubernetes")
        options["kubeconfig"] = str(kubeconfig.expanduser().resolve())
    if context:
        if backend is not Backend.kubernetes:
            fail("--context: only with --backend kubernetes")
        options["context"] = context
    if node_pool is not None:
        from jobsched.rightsizing.pools import load_pool
        from jobsched.spec.errors import SpecError
        from jobsched.spec.yamlsafe import load_file

        try:
            load_pool(load_file(node_pool), str(node_pool))
        except SpecError as e:
            fail(f"--node-pool: {e}")
    if node_provider is not None:
        if backend is not Backend.kubernetes:
            fail("--node-provider: only with --backend kubernetes")
        if node_provider not in ("kwok", "karpenter"):
            fail(f"--node-provider: unknown provider {node_provider!r} (known: kwok, karpenter)")
        if node_pool is None:
            fail("--node-provider: needs --node-pool")
        options["node_provider"] = node_provider
    if node_class is not None:
        if node_provider != "karpenter":
            fail("--node-class: only with --node-provider karpenter")
        options["node_class"] = node_class
    if ttl_after_finished is not None:
        if backend is not Backend.kubernetes:
            fail("--ttl-after-finished: only with --backend kubernetes")
        if ttl_after_finished < 0:
            fail("--ttl-after-finished: must not be negative")
        options["ttl_seconds_after_finished"] = ttl_after_finished  # type: ignore[assignment]
    for option, on in (("watch_kubeflow", watch_kubeflow), ("watch_volcano", watch_volcano),
                       ("watch_jobs", watch_jobs)):
        if on:
            if backend is not Backend.kubernetes:
                fail(f"--{option.replace('_', '-')}: only with --backend kubernetes")
            options[option] = True  # type: ignore[assignment]
    if local_nodes is not None:
        if backend is not Backend.local:
            fail("--local-nodes: only with --backend local")
        options["nodes_config"] = _local_nodes(local_nodes)  # type: ignore[assignment]
    if provision_delay < 0:
        fail("--provision-delay: must not be negative")
    if sum((repair, reset, restore_backup is not None)) > 1:
        fail("--repair, --reset and --restore-backup: give at most one")
    if backup_interval < 0:
        fail("--backup-interval: must not be negative")
    if backup_keep < 1:
        fail("--backup-keep: must be at least 1")
    store_action = (("repair", None) if repair else ("reset", None) if reset
                    else ("restore", restore_backup) if restore_backup is not None else None)
    if max_body < 1:
        fail("--max-body: must be at least 1 byte")
    _workflow_limits(max_loop_items, max_live_steps)
    try:
        port = default_port() if port is None else port
    except ValueError as e:
        fail(str(e))
    configure_logging()
    try:
        serve(_home(home), host, port, backend.value, options,
              runtime_options={"node_pool": node_pool, "provision_delay": provision_delay, "policy": policy,
                               "backup_interval": backup_interval, "backup_keep": backup_keep},
              tls=tls, store_action=store_action, max_body=max_body)
    except ServerStartError as e:
        fail(str(e), EXIT_INVALID)
    except StoreDamaged as e:
        fail(str(e), EXIT_STORE_DAMAGED)


def _workflow_limits(max_loop_items: int | None, max_live_steps: int | None) -> None:
    """Check the workflow limits and hand them to the workflow controller (it reads them from the
    environment, where they may also be set)."""
    import os

    from jobsched.workflows.loops import ENV_MAX_LIVE_STEPS, ENV_MAX_LOOP_ITEMS, Limits

    for flag, value, env in (("--max-loop-items", max_loop_items, ENV_MAX_LOOP_ITEMS),
                             ("--max-live-steps", max_live_steps, ENV_MAX_LIVE_STEPS)):
        if value is not None:
            if value < 1:
                fail(f"{flag}: must be at least 1, got {value}")
            os.environ[env] = str(value)
    try:
        Limits.from_env()
    except ValueError as e:
        fail(str(e))


def _local_nodes(path: Path) -> list[dict[str, object]]:
    from pydantic import ValidationError

    from jobsched.backends.local.backend import VIRTUAL_NODE_KEYS, virtual_node
    from jobsched.spec import yamlsafe
    from jobsched.spec.errors import SpecError, format_validation_error

    try:
        data, _ = yamlsafe.loads(yamlsafe.load_file(path), str(path))
    except SpecError as e:
        fail(f"--local-nodes: {e}")
    if not isinstance(data, list) or not data:
        fail(f"--local-nodes: {path} must hold a non-empty list of nodes")
    for i, n in enumerate(data):
        if not isinstance(n, dict) or "name" not in n:
            fail(f"--local-nodes: [{i}].name is required")
        unknown = set(n) - VIRTUAL_NODE_KEYS
        if unknown:
            fail(f"--local-nodes: [{i}].{sorted(unknown)[0]}: unknown field")
        try:
            virtual_node(n)
        except ValidationError as e:
            fail(f"--local-nodes: [{i}].{format_validation_error(e)}")
        except ValueError as e:
            fail(f"--local-nodes: [{i}]: {e}")
    return data  # type: ignore[no-any-return]


@server_app.command("stop")
def stop(ctx: typer.Context, home: Path | None = HOME,
         timeout: float = typer.Option(15.0, help="Seconds to wait after SIGTERM before SIGKILL.")) -> None:
    """Stop the server running for the home (SIGTERM, wait, SIGKILL)."""
    from jobsched.server.daemon import stop as stop_server

    h = _home(home, ctx)
    pid = stop_server(h, timeout=timeout)
    if pid is None:
        print(f"no jobsched server running for {h}")
    else:
        print(f"stopped the jobsched server for {h} (pid {pid})")


@server_app.command("status")
def status(ctx: typer.Context, home: Path | None = HOME) -> None:
    """Say whether a server runs for the home, and what it answers at the URL."""
    from jobsched.sdk.client import Client
    from jobsched.sdk.errors import JobschedError
    from jobsched.server.daemon import server_pid

    h = _home(home, ctx)
    pid = server_pid(h)
    print(f"home:    {h}\nprocess: {'pid ' + str(pid) if pid else 'none running'}")
    with Client(home=h, autostart=False) as client:
        try:
            info = client.info()
        except JobschedError as e:
            print(f"url:     {client.url}: {e}")
            raise typer.Exit(EXIT_UNREACHABLE) from None
        print(f"url:     {client.url} (version {info.version}, backend {info.backend}, pid {info.pid}, "
              f"enforcement {info.enforcement or '-'})")


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
