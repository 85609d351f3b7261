"""The engine: open-loop schedules, worker processes, and the runner of one run point."""
