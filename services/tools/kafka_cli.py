"""`mandat kafka provision` and `mandat kafka acls`: topics and ACLs, as the Kafka admin.

For a cluster `mandat up` did not start: `provision` creates every topic and, when the
settings say the broker takes logins (MANDAT_KAFKA_SECURITY_PROTOCOL), every ACL of
services/adapters/kafka/acls.py; `acls` prints them as `kafka-acls` commands (for operators
who apply ACLs with their own tooling) or, with `--check`, compares them with what the
broker enforces.
"""

from __future__ import annotations

import argparse
import asyncio

from services.adapters.kafka.acls import (
    acls,
    commands,
    described_acls,
    extra_grants,
    provision_kafka,
)
from services.adapters.kafka.security import secured
from services.adapters.runtime.settings import ServiceSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("kafka", help="Kafka topics and ACLs, as the admin principal")
    actions = parser.add_subparsers(dest="action", required=True)
    provision = actions.add_parser("provision", help="create every topic and ACL (idempotent)")
    provision.set_defaults(func=_provision)
    listing = actions.add_parser("acls", help="print the ACLs as kafka-acls commands")
    listing.add_argument(
        "--command-config",
        default="admin.properties",
        help="the admin's client properties file named in the commands",
    )
    listing.add_argument(
        "--check", action="store_true", help="compare with what the broker enforces now"
    )
    listing.set_defaults(func=_acls)


def _provision(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    created = asyncio.run(provision_kafka(settings))
    print(f"topics created: {', '.join(created) if created else 'none (all there)'}")
    if secured(settings):
        print(f"ACLs in force: {len(acls(settings))}")
    else:
        print("ACLs: none (MANDAT_KAFKA_SECURITY_PROTOCOL=PLAINTEXT: the broker takes no login)")
    return 0


def _acls(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    if not args.check:
        print("\n".join(commands(settings, args.command_config)))
        return 0
    missing = set(acls(settings)) - asyncio.run(described_acls(settings))
    for acl in sorted(missing):
        print(f"missing: {acl.command(settings.kafka_bootstrap_servers, args.command_config)}")
    extra = asyncio.run(extra_grants(settings))
    for grant in extra:
        print(f"beyond the policy: {grant}")
    if not missing and not extra:
        print("every ACL is in force, and nothing more")
    else:
        print(f"{len(missing)} ACLs missing, {len(extra)} grants beyond the policy")
    return 1 if missing or extra else 0
