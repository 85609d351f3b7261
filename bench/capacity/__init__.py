"""Capacity planning: the max sustainable rate under an SLO (``search``), what makes a rate
sustainable (``checks``), latency-versus-throughput sweeps, and sizing (``plan``)."""
