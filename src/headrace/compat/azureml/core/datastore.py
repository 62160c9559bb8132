"""`azureml.core.datastore`: named storage locations: local folders (the defaults,
`register_local`), Azure Blob containers (`register_azure_blob_container`, as in SDK v1), and
headrace's S3 (`register_s3`) and GCS (`register_gcs`) over fsspec."""

from __future__ import annotations

from headrace.sdk.datastore import Datastore

__all__ = ["Datastore"]
