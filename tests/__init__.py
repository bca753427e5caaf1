import pytest

# Before tests.helpers is first imported: its asserts get pytest's rewriting too.
pytest.register_assert_rewrite("tests.helpers")
