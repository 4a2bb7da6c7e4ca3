"""The slide staging job's entrypoint and the wheels it installs (``pcam_pipeline.wsi.staging_jobs``)."""
