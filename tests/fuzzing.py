"""Bounded fuzzing of the entry points a user reaches: a few examples each in CI, many more for a release check.

    @fuzz(40)            # 40 examples in CI; with ATTNVIZ_FUZZ_EXAMPLES=N (or pytest --fuzz-long) N, if more
    @given(...)
    def test_...

`--fuzz-long` (tests/conftest.py) sets ATTNVIZ_FUZZ_EXAMPLES to LONG_EXAMPLES unless it is set already.
"""
import os

from hypothesis import HealthCheck, settings

LONG_EXAMPLES = 5000


def fuzz(examples):
    """Hypothesis settings for `examples` examples (more when asked for), no deadline: the machine is shared."""
    asked = int(os.environ.get("ATTNVIZ_FUZZ_EXAMPLES") or 0)
    return settings(max_examples=max(examples, asked), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])
