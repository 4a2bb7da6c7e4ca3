"""pcam_synth: synthetic data in the labs' formats, for the demo, the tests, the benchmarks and `pcam smoke`:
PCam-format HDF5 splits and slides and pyramidal TIFF slides (`synth`), slides written by other people's
writers (`slide_writers`: libvips, tifffile layouts) and slides built to stall the reader (`hostile_slides`)."""
