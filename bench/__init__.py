"""textserve's benchmark: the in-process limit, a wrk load generator, and a runner."""
