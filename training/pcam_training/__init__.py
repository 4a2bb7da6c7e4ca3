"""pcam_training: training configuration and the local CPU stand-in for SageMaker's image classifier."""
