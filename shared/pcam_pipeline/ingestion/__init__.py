"""From a dropped file to converted patches: validating and planning an upload (`ingestor`, `patch_files`,
`hdf5_input`, `training_settings`), fanning out shards (`shard_planning`), converting them (`conversion`, `patches`),
announcing a split or slide once (`completion`, `manifests`) and setting unusable files aside (`quarantine`)."""
