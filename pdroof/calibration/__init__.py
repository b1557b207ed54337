"""Calibration: fitting runtime profiles to micro-benchmark measurements, running those
measurements (``measure``), and reading measurement files. Uses serving's stage evaluation to
predict end-to-end runs; imports nothing above it."""
