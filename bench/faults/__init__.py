"""The fault timeline: a scenario's ``[[faults]]`` acted out against the load, and measured.

* ``inject.py`` acts on a service ``bench up`` started (through ``infra.ServiceFaults``) from
  a thread of the coordinator, or on the harness's own connections (``disconnect``). The
  in-process memory target acts its faults out inside each worker
  (``MemoryDriver.inject_fault``).
* ``figures.py`` turns what happened (when each action started, when the target answered
  again) and what the workers saw (acks and deliveries per 10 ms, failure times, the audit
  ledgers) into the per-fault figures of ``summary.json``'s ``faults`` list.
"""
