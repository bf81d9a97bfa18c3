# The webhook fixtures (signed deliveries through the real endpoint) for workflow tests that start
# from a provider event, e.g. automation rules.
from tests.integrations.conftest import deliver, make_connection  # noqa: F401
