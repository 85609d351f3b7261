"""Distributed load through Locust's master/worker mode, for when one machine is not enough.

The same scenario, engine, drivers, histograms and results format as ``bench run``; Locust
only carries the work to other processes or machines and the results back:

* ``cluster.py`` (the ``bench locust`` command's side; never imports Locust): starts a Locust
  master and local Locust workers as subprocesses and hands the point runner one connection
  per Locust worker instead of a local worker process.
* ``master.py`` (``python -m bench.locust.master``): a Locust master that relays each of our
  engine's messages between the point runner and a Locust worker, as Locust custom messages.
* ``worker.py`` (``python -m bench.locust.worker``, or ``bench locust-worker``): a Locust
  worker that hosts one asyncio loop in a native thread and runs our engine's worker in it,
  with the share of producers and consumers the runner gives it.
* ``wire.py``: the worker spec as plain data. Target options travel unresolved, so a
  ``${env:...}`` secret is resolved on the worker's machine and never crosses the network.

Locust's users are not used: a User with a ``wait_time`` is a closed loop, while our load is an
open-loop schedule (coordinated omission stays handled); each worker's share of the schedule
runs in the engine, and Locust carries processes, hosts and messages. Its statistics are not
fed either (they round to milliseconds); the results come from our histograms.

``import locust`` monkey-patches the process with gevent; only ``master.py`` and ``worker.py``
import it, and they run only in their own processes.
"""
