"""What every part of the pipeline speaks: object keys and what they mean (`keys`), the state table's records
(`records`) and statuses (`statuses`), the domain's exceptions (`errors`) and each function's settings parsed
once from its environment (`settings`)."""
