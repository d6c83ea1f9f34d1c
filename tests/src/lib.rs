//! Shared harness for the black-box tests in `tests/tests/`.
