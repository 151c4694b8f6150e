"""The worker: a supervisor that claims runs over HTTP and runs each attempt in a runner process."""
