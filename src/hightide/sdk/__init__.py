"""What user code touches: @task, triggering, runs, logger, run context, clients."""
