"""The script a SageMaker Processing job runs to evaluate a model (`evaluate_model`): standalone, numpy and
scikit-learn only, uploaded by the evaluation use case. The Lambda layer ships it and reuses its parsing of
transform outputs."""
