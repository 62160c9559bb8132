"""The objects users write pipelines with (SDK v1 names): Workspace, Datastore, data objects,
parameters, steps, Pipeline, compute targets, Experiment and runs. They talk to state only
through a `Backend`, and import nothing heavy at module level."""
