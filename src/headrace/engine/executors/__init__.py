"""Executors: where a prepared step's process actually runs (local process groups first)."""
