"""Adapters to AWS: S3 (`storage` for ranged reads, uploads and moves; `blob_store` for whole objects by key),
the event bus (`events`), operator alerts on SNS (`alerts`), SageMaker job starts (`job_launcher`), SageMaker's
request rules that botocore does not check (`request_rules`), S3 event parsing (`s3_notifications`) and the
Powertools logger, tracer and metrics (`observability`)."""
