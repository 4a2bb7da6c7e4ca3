"""What every part of the pipeline speaks: the bucket's key layout (`keys`), what a dropped key is
(`dropped_files`), the state table's records (`records` for files, splits, slides and the scoring queue;
`model_records` for jobs and models) and statuses (`statuses`), the domain's exceptions (`errors`), each
function's settings parsed once from its environment (`settings`), and the ports to AWS as Protocols
(`ports`), which the adapters in `aws` and the tests' fakes implement."""
