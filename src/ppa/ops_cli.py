"""`ppa operator create` and `ppa projections list|rebuild`: the operators' commands."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ppa.admin import identity_service, settings_of
from ppa_runtime.runtime import Runtime


async def _operator_create(args: argparse.Namespace) -> int:
    from ppa_identity.operators import InvalidOperator, OperatorExists

    async with identity_service(args) as identity:
        try:
            operator_id = await identity.operators.create(args.email, args.password)
        except InvalidOperator as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OperatorExists:
            print(f"error: operator {args.email} exists already", file=sys.stderr)
            return 1
        print(f"operator created: {args.email.strip().lower()} (id {operator_id}); sign in at /ops/login")
        return 0


async def _projections(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ppa.platform import build_host
    from ppa_runtime.ops.audit import CLI, Audit
    from ppa_runtime.ops.health import projection_name, projections_of
    from ppa_runtime.ops.rebuilds import UnknownProjection, find_projection, rebuild_and_audit
    from ppa_runtime.rebuild import RebuildProgress

    runtime = await Runtime.open(settings_of(args))
    try:
        host = build_host(runtime, workers=False)
        for svc in host.services:
            await svc.start()
        if args.action == "list":
            for service, spec in projections_of(host):
                print(f"{projection_name(spec):28} {service:10} group {spec.group:24} {', '.join(spec.collections)}")
            return 0
        try:
            _, spec = find_projection(host, args.name)
        except UnknownProjection:
            names = ", ".join(projection_name(s) for _, s in projections_of(host))
            print(f"error: no projection {args.name!r}; one of: {names}", file=sys.stderr)
            return 2
        state = RebuildProgress(projection_name(spec))
        job = asyncio.create_task(rebuild_and_audit(host, Audit(runtime), args.name, CLI, state))
        with tqdm(total=0, unit="ev", desc=state.projection, disable=args.quiet) as bar:
            while not job.done():
                await asyncio.wait({job}, timeout=0.2)
                bar.total = max(state.total, state.read)
                bar.n = state.read
                bar.set_postfix_str(state.phase)
                bar.refresh()
        try:
            applied = job.result()
        except Exception as exc:
            print(f"error: rebuild failed, the live read model is unchanged: {exc}", file=sys.stderr)
            return 1
        print(f"{state.projection}: rebuilt from {state.read} events ({applied} applied) and swapped in")
        return 0
    finally:
        await runtime.close()


def add_parsers(sub) -> None:
    """Add the `operator` and `projections` commands."""
    operator = sub.add_parser("operator", help="operator accounts (event dashboard)")
    actions = operator.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an operator account")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--data-dir", default=None)
    create.set_defaults(handler=lambda a: asyncio.run(_operator_create(a)))

    projections = sub.add_parser("projections", help="read models built from topics")
    actions = projections.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list the projections that can be rebuilt")
    listing.add_argument("--data-dir", default=None)
    listing.set_defaults(handler=lambda a: asyncio.run(_projections(a)))
    rebuild = actions.add_parser("rebuild", help="rebuild a projection from its topics, then swap it in")
    rebuild.add_argument("name", help="projection name (see `ppa projections list`) or its consumer group")
    rebuild.add_argument("--data-dir", default=None)
    rebuild.add_argument("--quiet", action="store_true", help="no progress bar")
    rebuild.set_defaults(handler=lambda a: asyncio.run(_projections(a)))
