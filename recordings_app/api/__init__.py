"""The HTTP API under /api/v1/: the pages' reads and actions for other systems."""
