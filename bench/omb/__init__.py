"""OpenMessaging Benchmark (OMB) files in and out (issue 20).

* ``workload``: an OMB workload YAML as an eventbench scenario (``bench run WORKLOAD.yaml``,
  ``bench import-omb``): every field maps to one eventbench field, or is an error naming it;
* ``drivers``: an OMB driver YAML (``--omb-driver kafka.yaml``) as a target's options;
* ``export``: a run's points as OMB ``TestResult`` JSON (``bench export-omb``), which OMB's
  own chart script reads.
"""
