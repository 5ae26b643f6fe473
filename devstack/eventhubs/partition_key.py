"""The endpoint places keyed messages by the service's rule, shared with the producer.

The rule lives in workers/partition_key.py.
"""

from workers.partition_key import partition_for_key

__all__ = ["partition_for_key"]
