"""podium-app: the app's command on servers.

  podium-app migrate                      bring the schema to the head migration
  podium-app serve                        HTTP on PODIUM_BIND_HOST:PODIUM_BIND_PORT (uvicorn)
  podium-app worker                       the background queue worker (arq)
  podium-app create-user NAME EMAIL       a confirmed, approved account (password on stdin)
  podium-app set-role NAME ROLE           owner | admin | moderator | member
  podium-app tokens create|list|revoke    API tokens of an account
  podium-app settings show|set|reset      run-time instance settings (mode, registrations,
                                          rate limits, post length): set KEY=VALUE ...
  podium-app delete-account NAME          delete an account and everything it made (queued)

Exit status: 0 done, 1 failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys

from sqlalchemy import select

from podium_app.settings import get_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podium-app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the database schema to the head migration")
    serve = sub.add_parser("serve", help="serve HTTP (uvicorn)")
    serve.add_argument("--host", help="default: PODIUM_BIND_HOST")
    serve.add_argument("--port", type=int, help="default: PODIUM_BIND_PORT")
    serve.add_argument("--workers", type=int, help="default: PODIUM_WEB_WORKERS")
    worker = sub.add_parser("worker", help="run the queue worker")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    create = sub.add_parser("create-user", help="create a confirmed, approved account")
    create.add_argument("username")
    create.add_argument("email")
    create.add_argument("--role", default="member")
    create.add_argument("--publisher", action="store_true", help="may post in desk mode")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from stdin (default: generate and print one)")
    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("username")
    role.add_argument("role", choices=["owner", "admin", "moderator", "member"])
    tokens = sub.add_parser("tokens", help="API tokens of an account")
    tokens.add_argument("action", choices=["create", "list", "revoke"])
    tokens.add_argument("username")
    tokens.add_argument("--scopes", default="read write follow")
    runtime = sub.add_parser("settings", help="run-time instance settings (override PODIUM_*)")
    runtime.add_argument("action", choices=["show", "set", "reset"])
    runtime.add_argument("items", nargs="*", metavar="KEY=VALUE|KEY",
                         help="set: KEY=VALUE pairs; reset: KEYs back to their PODIUM_* default")
    delete = sub.add_parser("delete-account",
                            help="delete an account, its posts, media and cached copies")
    delete.add_argument("username")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


async def _with_session(fn):
    from podium_app.db import Database

    db = Database.from_settings(get_settings())
    try:
        async with db.sessions() as session, session.begin():
            return await fn(session)
    finally:
        await db.dispose()


async def _account(session, username: str):
    from podium_app.services import accounts

    account = await accounts.find_by_username(session, username)
    if account is None:
        raise SystemExit(f"error: no account named {username!r}")
    return account


def _create_user(args) -> None:
    from podium_app.services import accounts

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password, generated = secrets.token_urlsafe(18), True

    async def run(session):
        return await accounts.create_account(
            session, username=args.username, email=args.email, password=password,
            role=args.role, approved=True, confirmed=True, publisher=args.publisher)

    account = asyncio.run(_with_session(run))
    print(f"created {account.username} ({account.role}) id={account.id.int}")
    if generated:
        print(f"password: {password}")


def _set_role(args) -> None:
    from podium_app.services import accounts

    async def run(session):
        account = await _account(session, args.username)
        await accounts.set_role(session, account, args.role)

    asyncio.run(_with_session(run))
    print(f"{args.username} is now {args.role}")


def _tokens(args) -> None:
    from podium_app import security
    from podium_app.models import OAuthToken
    from podium_app.services import accounts

    async def run(session):
        account = await _account(session, args.username)
        if args.action == "create":
            token = security.new_token()
            session.add(OAuthToken(token_hash=security.token_hash(token), account_id=account.id,
                                   scopes=args.scopes))
            return [f"token: {token}"]
        if args.action == "revoke":
            await accounts.revoke_tokens(session, account.id)
            return [f"revoked every token of {account.username}"]
        rows = (await session.scalars(select(OAuthToken).where(
            OAuthToken.account_id == account.id).order_by(OAuthToken.created_at))).all()
        return [f"{row.id.int} scopes={row.scopes!r} created={row.created_at:%Y-%m-%d %H:%M} "
                f"last_used={row.last_used_at or '-'}" for row in rows]

    for line in asyncio.run(_with_session(run)):
        print(line)


def _delete_account(args) -> None:
    from podium_app import queue
    from podium_app.services import deletion

    if not args.yes:
        answer = input(f"Delete {args.username} and everything it made, for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise ValueError("not confirmed: nothing was deleted")

    async def run(session):
        account = await _account(session, args.username)
        await deletion.schedule(session, account)
        return account

    account = asyncio.run(_with_session(run))

    async def enqueue() -> None:
        pool = await queue.connect(get_settings())
        try:
            await pool.enqueue_job("delete_account", str(account.id))
        finally:
            await pool.aclose()

    asyncio.run(enqueue())
    print(f"{account.username} is hidden and its deletion is queued (the worker deletes it)")


def _settings(args) -> None:
    from podium_app import instance_settings

    if args.action == "set":
        pairs = [item.partition("=") for item in args.items]
        if not pairs or any(not sep or not key for key, sep, _ in pairs):
            raise ValueError("settings set takes KEY=VALUE pairs, e.g. mode=desk")
        changes = {key: value for key, _, value in pairs}
    elif args.action == "reset":
        if not args.items:
            raise ValueError("settings reset takes the KEYs to reset, e.g. mode")
        changes = dict.fromkeys(args.items)
    else:
        changes = {}

    async def run(session):
        if changes:
            changed = await instance_settings.update(session, None, changes, via="podium-app")
            for key, (old, new) in changed.items():
                print(f"{key}: {old if old is not None else '(default)'} -> "
                      f"{new if new is not None else '(default)'}")
        stored = await instance_settings.stored(session)
        return stored

    stored = asyncio.run(_with_session(run))
    if args.action == "show":
        base = get_settings()
        for key in instance_settings.RUNTIME_KEYS:
            value = stored.get(key, getattr(base, key))
            print(f"{key}={value}{'' if key in stored else '  (default)'}")


def _serve(args) -> None:
    import uvicorn

    from podium_app import worker_sockets

    settings = get_settings()
    options = dict(
        app="podium_app.serving:create_served_app", factory=True,
        host=args.host or settings.bind_host, port=args.port or settings.bind_port,
        workers=args.workers or settings.web_workers, proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips, access_log=False,
        server_header=False, timeout_worker_healthcheck=settings.web_healthcheck_timeout)
    if options["workers"] > 1:
        # One listening socket per worker, so that connections spread across them
        # (decision 0301).
        worker_sockets.run(uvicorn.Config(**options))
    else:
        uvicorn.run(**options)


def _worker(args) -> None:
    from arq.worker import Worker

    from podium_app.tasks import worker_settings

    worker = Worker(**worker_settings(get_settings()), burst=args.burst)
    worker.run()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "migrate":
            from podium_app import migrate

            migrate.upgrade(get_settings())
            print("database schema is at the head migration")
        elif args.command == "serve":
            _serve(args)
        elif args.command == "worker":
            _worker(args)
        elif args.command == "create-user":
            _create_user(args)
        elif args.command == "set-role":
            _set_role(args)
        elif args.command == "tokens":
            _tokens(args)
        elif args.command == "settings":
            _settings(args)
        elif args.command == "delete-account":
            _delete_account(args)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        from podium_app.errors import ApiError

        if isinstance(err, ApiError):
            print(f"error: {err.message}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
