"""Scoring slides with the current model: the scoring queue and its batches (`queue`, `batches`), transform
jobs of ready slides (`slides`), their outputs read back (`gathering`) and written as predictions
(`slide_results`)."""
