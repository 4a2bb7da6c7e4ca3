"""The local runtime reads a DynamoDB stream as Lambda does: only the records a FilterCriteria pattern matches."""

from pcam_local.stream_poller import matches


def test_the_local_stream_filters_records_as_lambdas_filter_criteria_do():
    pattern = {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "slide#labs/"}, "models"]}}}}
    assert matches(pattern, {"dynamodb": {"Keys": {"pk": {"S": "slide#labs/a/s1"}, "sk": {"S": "slide"}}}})
    assert matches(pattern, {"dynamodb": {"Keys": {"pk": {"S": "models"}}}})
    assert not matches(pattern, {"dynamodb": {"Keys": {"pk": {"S": "slide#s1"}}}})
    assert not matches(pattern, {"dynamodb": {"Keys": {}}})
