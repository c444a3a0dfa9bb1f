"""SwarmGuard: a Byzantine-fault-tolerant validator core and a resilience library.

The package is layered; each floor imports only the floors below it (see ``docs/architecture.md``).
``swarmguard.resilience`` is the bottom floor and depends on nothing else in the package, so a
service can use it on its own.
"""

__version__ = "0.1.0"
