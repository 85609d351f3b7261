"""eventbench: a benchmark and load-test harness for event-driven systems.

Importing this package has no side effects: no event loop, no network, no gevent.
"""

__version__ = "0.1.0"
