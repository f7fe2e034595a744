"""`python -m dunning_pipeline.workbench [serve] [--host H] [--port P]` serves the workbench;
`python -m dunning_pipeline.workbench adduser NAME` adds (or resets) a user of the users file,
prompting for the password on a terminal or reading its first line from standard input."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from dunning_pipeline.settings import SettingsError
from dunning_pipeline.workbench import auth, config as config_mod


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dunning_pipeline.workbench", description=__doc__)
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the workbench (the default)")
    for q in (p, serve):
        q.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; another needs users or a trusted proxy)")
        q.add_argument("--port", type=int, default=8765)
    add = sub.add_parser("adduser", help="add or reset a user in DUNNING_WORKBENCH_USERS")
    add.add_argument("name")
    return p.parse_args(argv)


def read_password(stdin=None) -> str:
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise auth.AuthError("password: the two entries differ")
        return first
    return stdin.readline().rstrip("\r\n")


def check_bind(host: str, cfg: config_mod.WorkbenchConfig) -> None:
    """A non-loopback address only with a way to authenticate: users or a trusted proxy."""
    if config_mod.is_loopback(host):
        return
    has_users = bool(auth.UsersFile(cfg.users_file).names())
    if not has_users and not cfg.proxy_auth:
        raise SettingsError(
            f"refusing to listen on {host}: no authentication is configured. Set "
            f"{config_mod.USERS_VAR} to a users file with at least one user (adduser) or "
            f"{config_mod.PROXY_VAR} to your authenticating proxy's address, or bind 127.0.0.1")


def serve(cfg: config_mod.WorkbenchConfig, host: str = "127.0.0.1", port: int = 8765, **kwargs) -> None:
    import uvicorn

    from dunning_pipeline.workbench.app import create_app

    check_bind(host, cfg)
    app = create_app(cfg, **kwargs)
    # The proxy's headers are read by the app, only from the trusted address: uvicorn's own
    # proxy handling would replace the peer address the app checks.
    uvicorn.run(app, host=host, port=port, proxy_headers=False, server_header=False, log_level="info")


def prepare_demo(warehouse_url: str, *, users_file: str, user: str = "demo", password: str | None = None,
                 odoo_url: str | None = None) -> tuple[config_mod.WorkbenchConfig, str]:
    """A demo user (a random password unless given) and the config to serve `warehouse_url`."""
    import secrets

    password = password or secrets.token_urlsafe(9)
    auth.UsersFile(users_file).add(user, password)
    return config_mod.WorkbenchConfig(database_url=warehouse_url, users_file=users_file, odoo_url=odoo_url), password


def serve_for_demo(warehouse_url: str, *, users_file: str, user: str = "demo", password: str | None = None,
                   host: str = "127.0.0.1", port: int = 8765, odoo_url: str | None = None) -> None:
    """For `make demo`: add a demo user and serve the workbench on the sandbox's warehouse
    (blocks until Ctrl-C). Prints the URL and the login."""
    cfg, password = prepare_demo(warehouse_url, users_file=users_file, user=user, password=password,
                                 odoo_url=odoo_url)
    print(f"Collections workbench: http://{host}:{port}/  (log in as {user} / {password}; Ctrl-C stops it)",
          flush=True)
    serve(cfg, host, port)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        cfg = config_mod.from_env()
        if args.command == "adduser":
            new = auth.UsersFile(cfg.users_file).add(auth.check_user_name(args.name), read_password())
            print(f"{'added' if new else 'updated'} user {args.name} in {cfg.users_file}")
            return 0
        serve(cfg, args.host, args.port)
        return 0
    except (SettingsError, auth.AuthError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
