//! PostgreSQL (issue 14) on a real PostgreSQL server: a throwaway cluster started
//! for each test (`rampart_tests::pg`). One test binary, so that its tests run side by
//! side: `backend`, the store itself; `cluster`, collectors on it.

mod backend;
mod cluster;
