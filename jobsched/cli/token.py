"""``jobsched token create|list|revoke`` and ``jobsched audit``: tenants and the audit log
(docs/security.md). All need an admin token (exit 4 otherwise)."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from jobsched.cli.output import Format, console, emit, fail, fmt_age, sdk_errors

if TYPE_CHECKING:  # pragma: no cover
    from jobsched.sdk.admin import AdminAPI

token_app = typer.Typer(help="Issue, list and revoke API tokens (admin).", no_args_is_help=True)
OUT = typer.Option(Format.table, "--output", "-o", help="Output format.")


class RoleOpt(StrEnum):
    admin = "admin"
    user = "user"
    viewer = "viewer"


def _admin() -> AdminAPI:
    from jobsched.sdk.client import Client

    return Client().admin


@token_app.command("create")
def create(name: str = typer.Argument(..., help="Who the token is for (shown in the audit log)."),
           namespace: list[str] = typer.Option([], "--namespace", "-n",
                                               help="A namespace the token may use; repeatable."),
           role: RoleOpt = typer.Option(RoleOpt.user, help="admin | user (its namespaces) | viewer (read-only)."),
           output: Format = OUT) -> None:
    """Create a token and print it once: the server keeps only its SHA-256 hash."""
    with sdk_errors():
        t = _admin().create_token(name, role=role.value, namespaces=namespace)
    if output is not Format.table:
        emit(t, output)
        return
    print(t.token)
    scope = ", ".join(t.namespaces) or "all namespaces"
    print(f"token {t.name!r} (role {t.role.value}, {scope}): shown once; give it to its user as "
          "JOBSCHED_TOKEN", file=sys.stderr)


@token_app.command("list")
def list_tokens(output: Format = OUT) -> None:
    """The tokens (never their secrets), revoked ones included."""
    with sdk_errors():
        tokens = _admin().tokens()
    if output is not Format.table:
        emit(tokens, output)
        return
    from rich.table import Table

    t = Table(box=None, header_style="bold", pad_edge=False)
    for c in ("NAME", "ROLE", "NAMESPACES", "CREATED", "STATE"):
        t.add_column(c, no_wrap=c == "NAME")
    for tok in tokens:
        state = "home token file" if tok.source == "home" else ("revoked" if tok.revoked_at else "active")
        t.add_row(tok.name, tok.role.value, ", ".join(tok.namespaces) or "*",
                  fmt_age(tok.created_at) if tok.created_at else "-", state)
    console().print(t)


@token_app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The token's name.")) -> None:
    """Revoke a token: from now on it gets 401."""
    with sdk_errors():
        _admin().revoke_token(name)
    print(f"token {name!r} revoked")


def audit(limit: int = typer.Option(50, "--limit", help="How many of the latest entries (1-10000)."),
          output: Format = OUT) -> None:
    """The latest entries of the audit log (every mutating call: who, what, when, from where, outcome)."""
    if not 1 <= limit <= 10000:
        fail(f"--limit: must be between 1 and 10000, got {limit}")
    with sdk_errors():
        entries = _admin().audit(limit)
    if output is not Format.table:
        emit(entries, output)
        return
    for e in entries:
        print(f"{e.time}  {e.status}  {e.who or '-'}({e.role or '-'})  {e.method} {e.path}"
              f"{'  ' + e.object if e.object else ''}  from {e.client or '-'}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.command("audit")(audit)
