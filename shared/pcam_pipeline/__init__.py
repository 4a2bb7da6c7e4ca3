"""pcam_pipeline: the domain library of the PCam slide-scoring pipeline (the Lambda layer)."""
