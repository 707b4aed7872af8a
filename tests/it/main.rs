//! End-to-end tests: real loopback HTTP servers, real sled dirs, real child processes.

#[test]
fn workspace_links() {
    assert_eq!(env!("CARGO_PKG_NAME"), "e2e-tests");
}
