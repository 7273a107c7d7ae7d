"""Warm-up, measure and export jobs: the checked requests, the queue (the jobs table), the
worker that runs one job, the executors that supply workers, and the starter catalogue."""
