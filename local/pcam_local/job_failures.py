"""How a local SageMaker job ends other than Completed: the FailureReason SageMaker would report.

One exception per job kind, so a reader sees which kind of job failed; the local SageMaker records
any of them as status Failed with the message as FailureReason.
"""


class LocalJobFailed(Exception):
    """What SageMaker would report as the job's FailureReason (``ClientError: …``, ``AlgorithmError: …``)."""


class TrainingFailed(LocalJobFailed):
    pass


class TuningFailed(LocalJobFailed):
    pass


class TransformFailed(LocalJobFailed):
    pass


class ProcessingFailed(LocalJobFailed):
    pass
