"""TaskFlow decorators of the Lightning provider (``@task.lightning``)."""
