"""Logger, Tracer and Metrics, created once; service names come from POWERTOOLS_SERVICE_NAME."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
