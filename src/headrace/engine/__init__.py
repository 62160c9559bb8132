"""Running pipelines: the agent (claims runs), the orchestrator (walks a run's DAG), the
executors (start step processes), the step runtime (what a script sees), snapshots and reuse
fingerprints. Never imports the SDK, server or CLI."""
