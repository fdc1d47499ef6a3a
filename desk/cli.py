"""The `desk` console script (CONTRACT.md section 1)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from desk.actions.secrets import with_secret
from desk.config import Settings, load_settings
from desk.errors import DeskError
from desk.store.db import Database
from desk.store.migrate import upgrade


def _database(settings: Settings) -> Database:
    upgrade(settings.database_url)
    return Database(settings.database_url)


def _ready_settings() -> Settings:
    """Settings for a serving process: migrations applied, the signing secret resolved."""
    settings = load_settings()
    db = _database(settings)
    try:
        return with_secret(settings, db)
    finally:
        db.dispose()


def _policy_file_ok(settings: Settings) -> bool:
    """A serving process refuses to start on a policy file it cannot use, rather than run without its rules."""
    from desk.fallback.policy_file import PolicyError, load_policy

    try:
        load_policy(settings.policy_file)
    except PolicyError as exc:
        print(f"error: invalid policy file\n{exc}", file=sys.stderr)
        return False
    except OSError as exc:
        print(f"error: invalid policy file: cannot read {settings.policy_file}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    from desk.serve import serve

    if not _policy_file_ok(load_settings()):
        return 2
    serve(_ready_settings())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from desk.demo_ai.modes import MODES

    if args.ai not in MODES:
        print(f"error: --ai must be one of {', '.join(MODES)}, not {args.ai!r}", file=sys.stderr)
        return 2
    from desk.demo import run_demo

    if not _policy_file_ok(load_settings()):
        return 2
    run_demo(_ready_settings(), ai_mode=args.ai)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    upgrade(settings.database_url)
    print("migrations applied", file=sys.stderr)
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    from desk.actions.staff import create_user

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("error: give the password on standard input", file=sys.stderr)
        return 2
    db = _database(load_settings())
    skills = [s.strip() for s in (args.skills or "").split(",") if s.strip()]
    user = create_user(
        db,
        email=args.email,
        name=args.name,
        role=args.role,
        password=password,
        skills=skills,
        capacity=args.capacity,
    )
    print(json.dumps({"id": user.id, "email": user.email, "role": user.role}))
    return 0


def _user_id(db: Database, email: str) -> str | None:
    from desk.actions.staff import list_users

    return next((u.id for u in list_users(db) if u.email == email.strip().lower()), None)


def cmd_user_update(args: argparse.Namespace) -> int:
    from desk.actions.staff import update_user

    db = _database(load_settings())
    user_id = _user_id(db, args.email)
    if user_id is None:
        print(f"error: no staff member with email {args.email}", file=sys.stderr)
        return 1
    skills = None if args.skills is None else [s.strip() for s in args.skills.split(",") if s.strip()]
    user = update_user(
        db, by=None, user_id=user_id, name=args.name, role=args.role, skills=skills, capacity=args.capacity
    )
    print(json.dumps({"id": user.id, "email": user.email, "role": user.role, "skills": user.skills}))
    return 0


def cmd_user_deactivate(args: argparse.Namespace) -> int:
    from desk.actions.staff import deactivate_user

    db = _database(load_settings())
    user_id = _user_id(db, args.email)
    if user_id is None:
        print(f"error: no staff member with email {args.email}", file=sys.stderr)
        return 1
    user = deactivate_user(db, by=None, user_id=user_id)
    print(json.dumps({"id": user.id, "email": user.email, "active": user.active}))
    return 0


def cmd_integration_create(args: argparse.Namespace) -> int:
    from desk.actions.integrations import create_integration

    db = _database(load_settings())
    creds = create_integration(
        db, name=args.name, webhook_url=args.webhook_url, fallback_webhook_url=args.fallback_webhook_url
    )
    print(json.dumps({"id": creds.id, "token": creds.token, "webhook_secret": creds.webhook_secret}))
    return 0


def cmd_learning_export(args: argparse.Namespace) -> int:
    from desk.actions.learning import list_entries, to_csv, to_jsonl

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            print(f"error: --since {args.since!r} is not an ISO 8601 date", file=sys.stderr)
            return 2
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    db = _database(load_settings())
    entries = list_entries(db, viewer=None, since=since, limit=10_000_000)
    sys.stdout.write(to_csv(entries) if args.format == "csv" else to_jsonl(entries))
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from desk.fallback.policy_file import PolicyError, load_policy

    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    counts = f"{len(policy.reasons)} reasons, {len(policy.guardrails)} guardrails, {len(policy.flows)} flows"
    print(f"{args.file}: ok, version {policy.version} ({counts})")
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    from desk.fallback.policy_file import builtin_policy_text

    sys.stdout.write(builtin_policy_text())
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="desk", description="Human-handoff desk for AI agents.")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="apply migrations and run the server").set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="serve with demo data, a demo AI and demo staff")
    # The modes are checked in cmd_demo: importing the demo AI here would slow every command down.
    demo.add_argument(
        "--ai",
        metavar="MODE",
        default="healthy",
        help="how the demo AI starts: healthy, slow, flaky or down (switch it later at /demo-ai/)",
    )
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    user = sub.add_parser("user", help="staff accounts").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create a staff member; the password is read from stdin")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    create.add_argument("--skills", default="")
    create.add_argument("--capacity", type=int, default=3)
    create.set_defaults(func=cmd_user_create)
    update = user.add_parser("update", help="change a staff member's name, role, skills or capacity")
    update.add_argument("--email", required=True)
    update.add_argument("--name")
    update.add_argument("--role", choices=["agent", "supervisor", "admin"])
    update.add_argument("--skills", help="comma-separated; replaces the current skills")
    update.add_argument("--capacity", type=int)
    update.set_defaults(func=cmd_user_update)
    deactivate = user.add_parser("deactivate", help="deactivate a staff member: signs them out everywhere")
    deactivate.add_argument("--email", required=True)
    deactivate.set_defaults(func=cmd_user_deactivate)

    integration = sub.add_parser("integration", help="integrations (AI agents, automations)").add_subparsers(
        dest="integration_command", required=True
    )
    icreate = integration.add_parser("create", help="create an integration; prints its token once")
    icreate.add_argument("--name", required=True)
    icreate.add_argument("--webhook-url")
    icreate.add_argument("--fallback-webhook-url")
    icreate.set_defaults(func=cmd_integration_create)

    learning = sub.add_parser("learning", help="the learning log").add_subparsers(
        dest="learning_command", required=True
    )
    export = learning.add_parser("export", help="write the learning log to standard output")
    export.add_argument("--since")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.set_defaults(func=cmd_learning_export)

    policy = sub.add_parser("policy", help="the fallback policy file").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy.add_parser("check", help="validate a policy file; prints every problem with its line")
    check.add_argument("file")
    check.set_defaults(func=cmd_policy_check)
    policy.add_parser("show", help="print the built-in policy file, to copy").set_defaults(func=cmd_policy_show)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DeskError as exc:
        print(f"error: {exc.message}" + (f" {exc.fields}" if exc.fields else ""), file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
