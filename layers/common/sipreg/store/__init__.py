"""DynamoDB access: one module per table."""


class ConcurrentUpdateError(Exception):
    """Someone saved the item after we read it (optimistic lock); re-read and decide again."""
