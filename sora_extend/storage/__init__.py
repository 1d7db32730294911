"""Job storage over fsspec: a local folder by default, any fsspec URL (s3://, gs://, memory://...)."""

from sora_extend.storage.store import JobStore, open_filesystem

__all__ = ["JobStore", "open_filesystem"]
