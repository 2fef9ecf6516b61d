//! The generator is pure (options in, template out) and depends on the core
//! alone: no AWS SDK, no async runtime, no etcd client. Building a template
//! links none of them, and this test refuses the manifest change that would.

const FORBIDDEN: [&str; 6] = [
    "tokio",
    "aws-",
    "etcd-client",
    "tonic",
    "rustls",
    "etcd-aws-io",
];

#[test]
fn the_generator_depends_on_the_core_and_no_io() {
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
    assert!(dependencies.contains(&"etcd-aws-core"), "{dependencies:?}");
    for name in &dependencies {
        assert!(
            !FORBIDDEN.iter().any(|f| name.starts_with(f)),
            "the generator must stay pure, but depends on {name}"
        );
    }
}
