"""The job's own failure (settings errors are ``config.ConfigError``)."""


class JobError(RuntimeError):
    """The job cannot run (actors failed to start, another job holds the output); the message says why."""
