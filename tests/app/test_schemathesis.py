"""Property-based fuzzing of every operation in the app's OpenAPI document (schemathesis):
whatever the input, the app never answers with a server error. Bounded to a few examples per
operation so the tier stays fast on 2 cores (PODIUM_FUZZ_EXAMPLES raises it).

schemathesis' own pytest plugin does not load under pytest 9, so the operations are
parametrized here and each runs its strategy under hypothesis directly.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from podium_app.app import create_app
from podium_app.settings import Settings
from schemathesis.checks import not_a_server_error

EXAMPLES = int(os.environ.get("PODIUM_FUZZ_EXAMPLES", "15"))
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def fuzz_token(make_user, post):
    """A staff account with every scope, so fuzzing reaches past authentication, and a post
    for ids to find."""
    staff = make_user("fuzzer", role="admin", publisher=True,
                      scopes="read write follow admin:read admin:write")
    post(staff, "seed #tag")
    return staff.headers


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_input_causes_a_server_error(operation, server, fuzz_token):
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call(base_url=server, headers=fuzz_token, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()
