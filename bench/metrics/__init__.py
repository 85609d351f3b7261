"""Measurement: latency histograms, interval logs and the delivery audit."""
