"""What every part of the pipeline speaks: the bucket's key layout (`keys`), what a dropped key is
(`dropped_files`), the state table's records (`records`) and statuses (`statuses`), the domain's exceptions
(`errors`) and each function's settings parsed once from its environment (`settings`)."""
