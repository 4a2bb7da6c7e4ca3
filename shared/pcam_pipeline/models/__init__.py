"""The model lifecycle: SageMaker's state-change events routed to the use cases (`flow`, `job_tracker`),
training (`training`), evaluation (`evaluation`, then `evaluation_report`: the ROC picture and the gate),
promotion of the current model (`promotion`), and the SageMaker requests (`sagemaker_jobs`,
`inference_requests`)."""
