"""The two services of article L611-20 and their tools, in three layers (docs/architecture.md).

- :mod:`services.domain`: the law as pure code (registry, kernel, the two alinéas, catalog);
- :mod:`services.adapters`: PostgreSQL, Kafka, the service runtime, trust anchors;
- :mod:`services.tools`: audit, benchmarks, demo, dev stack, dashboard, the ``mandat`` CLI.

Each layer imports only the ones below it and :mod:`contracts`; ``make lint`` checks it.
"""
