//! The core stays pure because its manifest says so: no async runtime, no AWS
//! SDK, no etcd client, no gRPC or TLS stack among its dependencies. The
//! compiler then refuses any I/O here; this test refuses the manifest change
//! that would let it in.

const FORBIDDEN: [&str; 8] = [
    "tokio",
    "aws-",
    "etcd-client",
    "tonic",
    "rustls",
    "hyper",
    "reqwest",
    "etcd-aws-io",
];

#[test]
fn the_core_depends_on_nothing_that_does_io() {
    let manifest = include_str!("../Cargo.toml");
    let dependencies: Vec<&str> = manifest
        .lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| line.split(['=', '.']).next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert!(!dependencies.is_empty(), "no [dependencies] read");
    for name in &dependencies {
        assert!(
            !FORBIDDEN.iter().any(|f| name.starts_with(f)),
            "the core must stay pure, but depends on {name}; put I/O in libs/io"
        );
    }
}
