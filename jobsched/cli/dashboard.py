"""``jobsched dashboard``: a one-time login URL for the server's web dashboard, opened in a browser.

The URL carries a short-lived, single-use login code minted by the server for a client that holds
the token (the token itself never goes in a URL); opening it sets an HttpOnly session cookie.
"""

from __future__ import annotations

import typer

from jobsched.cli.output import sdk_errors


def _has_gui() -> bool:
    """A graphical browser can open here (a text browser could not run the dashboard's scripts)."""
    import os
    import sys

    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def dashboard(print_url: bool = typer.Option(False, "--print-url",
                                             help="Only print the URL; do not open a browser.")) -> None:
    """Open the web dashboard (jobs, memory charts, queues, nodes, workflows) in a browser.

    Examples:
      jobsched dashboard               # opens a browser where there is one, and prints the URL
      jobsched dashboard --print-url   # for a browser on another machine (the link works once, ~60 s)
    """
    from jobsched.sdk.client import Client

    with sdk_errors(), Client() as client:
        url = client.dashboard_login_url()
    print(url)
    if not print_url:
        import webbrowser

        try:
            opened = _has_gui() and webbrowser.open(url)
        except webbrowser.Error:
            opened = False
        if not opened:
            typer.echo("no browser found here: open the URL above (it works once, within a minute)", err=True)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
