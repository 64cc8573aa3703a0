"""`mandat bench broker`: how long the local Kafka broker takes to start, and its memory.

Starts a broker in a fresh directory (storage formatted, then started), stops it, starts it
again on the same directory, and reads its resident memory after each start and after a
burst of messages — the figures `make up` and the test suite depend on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.tools.devstack.kafka import KAFKA_VERSION, start_kafka, stop_kafka


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=50_000, help="burst after start")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _burst(bootstrap: str, count: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("bench.broker", 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        value = b"x" * 500
        futures = [
            await producer.send("bench.broker", value, key=str(i).encode()) for i in range(count)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def measure(messages: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="mandat-bench-broker-"))
    try:
        started = time.perf_counter()
        node = start_kafka(run_dir, port=0, controller_port=0)
        first = time.perf_counter() - started
        rss_first = _rss_kib(node.pid)
        asyncio.run(_burst(node.bootstrap, messages))
        rss_burst = _rss_kib(node.pid)
        stop_kafka(run_dir)
        started = time.perf_counter()
        node = start_kafka(run_dir, port=0, controller_port=0)  # never the default ports
        restart = time.perf_counter() - started
        rss_restart = _rss_kib(node.pid)
        stop_kafka(run_dir)
        return {
            "kafka": KAFKA_VERSION,
            "first_start_s": round(first, 2),
            "restart_s": round(restart, 2),
            "rss_after_start_kib": rss_first,
            "rss_after_burst_kib": rss_burst,
            "rss_after_restart_kib": rss_restart,
            "burst_messages": messages,
        }
    finally:
        stop_kafka(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    result = measure(args.messages)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Kafka {result['kafka']} broker, one node (KRaft), -Xmx512m")
    print(
        f"  first start (format + start, until it serves clients)  {result['first_start_s']:6.2f} s"
    )
    print(f"  restart on the same directory                          {result['restart_s']:6.2f} s")
    print(
        f"  RSS after start / after {result['burst_messages']:,} messages / after restart: "
        f"{result['rss_after_start_kib'] // 1024} / {result['rss_after_burst_kib'] // 1024} / "
        f"{result['rss_after_restart_kib'] // 1024} MiB"
    )
    return 0
