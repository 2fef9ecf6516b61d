//! The IMDSv2 stand-in (tests/src/stand_in/imds.rs) as EC2's metadata service
//! behaves, and the agent's own metadata client (libs/io/src/aws/identity.rs)
//! reading through it: tokens first, refusal without one, and what the agent
//! does when the service starts slowly. No Docker; each test takes at most a
//! few seconds.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use etcd_aws_io::aws::identity;
use etcd_aws_tests::stand_in::imds::{
    Imds, ImdsInstance, ImdsOptions, ImdsRole, SlowStart, CREDENTIALS_PATH, TOKEN_HEADER,
    TOKEN_PATH, TOKEN_TTL_HEADER,
};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const INSTANCE_ID: &str = "i-0123456789abcdef0";
/// What the instance's private IP is, as the metadata says it.
const LOCAL_IPV4: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 31, 7, 9));

/// The agent's client finds the service through the process environment
/// (AWS_EC2_METADATA_SERVICE_ENDPOINT), as an SDK finds a non-default one:
/// the tests that set it take turns.
static ENDPOINT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn imds(options: ImdsOptions) -> Imds {
    let imds = Imds::start(LOCALHOST, options)
        .await
        .expect("starting the metadata service stand-in");
    imds.add_instance(
        LOCALHOST,
        ImdsInstance {
            instance_id: INSTANCE_ID.to_owned(),
            local_ipv4: LOCAL_IPV4,
            role: None,
        },
    );
    imds
}

/// How long the agent keeps asking in these tests, unless one says otherwise.
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs the agent's `identity::resolve` with no identity given, as on EC2,
/// against `imds`, with `patience`; returns its result and how long it took.
async fn agent_identity_within(
    imds: &Imds,
    patience: Duration,
) -> (Result<(String, IpAddr), identity::IdentityError>, Duration) {
    let _turn = ENDPOINT.lock().await;
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    let started = Instant::now();
    // Bounded: the client's own timeouts end it well before this.
    let result = tokio::time::timeout(
        patience + Duration::from_secs(10),
        identity::resolve(None, None, patience),
    )
    .await
    .expect("the agent's metadata client outlasted its patience by 10 s");
    std::env::remove_var("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    (result, started.elapsed())
}

async fn agent_identity(
    imds: &Imds,
) -> (Result<(String, IpAddr), identity::IdentityError>, Duration) {
    agent_identity_within(imds, PATIENCE).await
}

/// One HTTP/1.1 request on a fresh connection; the status, the named
/// response header, and the body.
async fn request(
    imds: &Imds,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let mut stream = tokio::net::TcpStream::connect(imds.address())
        .await
        .expect("connecting to the metadata service stand-in");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("sending");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .expect("the stand-in did not answer within 5 s")
        .expect("reading the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .expect("a status line");
    let ttl = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case(TOKEN_TTL_HEADER)
            .then(|| value.trim().to_owned())
    });
    (status, ttl, body.to_owned())
}

async fn token(imds: &Imds, ttl_seconds: &str) -> String {
    let (status, ttl, token) =
        request(imds, "PUT", TOKEN_PATH, &[(TOKEN_TTL_HEADER, ttl_seconds)]).await;
    assert_eq!(status, StatusCode::OK, "a token for {ttl_seconds} s");
    assert_eq!(
        ttl.as_deref(),
        Some(ttl_seconds),
        "the TTL header of the answer"
    );
    token
}

#[tokio::test]
async fn a_token_unlocks_the_metadata_until_its_ttl_runs_out() {
    let imds = imds(ImdsOptions::default()).await;
    let token = token(&imds, "1").await;

    let (status, _, id) = request(
        &imds,
        "GET",
        "/latest/meta-data/instance-id",
        &[(TOKEN_HEADER, &token)],
    )
    .await;
    assert_eq!((status, id.as_str()), (StatusCode::OK, INSTANCE_ID));
    let (status, _, ip) = request(
        &imds,
        "GET",
        "/latest/meta-data/local-ipv4",
        &[(TOKEN_HEADER, &token)],
    )
    .await;
    assert_eq!((status, ip), (StatusCode::OK, LOCAL_IPV4.to_string()));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = request(
        &imds,
        "GET",
        "/latest/meta-data/instance-id",
        &[(TOKEN_HEADER, &token)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token past its TTL");
}

#[tokio::test]
async fn metadata_is_refused_without_a_valid_token() {
    let imds = imds(ImdsOptions::default()).await;
    let (status, _, _) = request(&imds, "GET", "/latest/meta-data/instance-id", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");
    let (status, _, _) = request(
        &imds,
        "GET",
        "/latest/meta-data/instance-id",
        &[(TOKEN_HEADER, "made-up")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a token it never issued");
}

#[tokio::test]
async fn a_token_is_refused_without_a_ttl_in_range() {
    let imds = imds(ImdsOptions::default()).await;
    for headers in [
        vec![],
        vec![(TOKEN_TTL_HEADER, "0")],
        vec![(TOKEN_TTL_HEADER, "21601")],
    ] {
        let (status, _, _) = request(&imds, "PUT", TOKEN_PATH, &headers).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a token request with {headers:?}"
        );
    }
}

#[tokio::test]
async fn the_agent_reads_its_identity_with_a_token_it_asked_for_first() {
    let imds = imds(ImdsOptions::default()).await;
    let (identity, _) = agent_identity(&imds).await;
    assert_eq!(
        identity.expect("the agent's identity"),
        (INSTANCE_ID.to_owned(), LOCAL_IPV4)
    );

    let requests = imds.requests();
    let first = requests.first().expect("the agent asked for something");
    assert_eq!(
        (&first.method, first.path.as_str()),
        (&Method::PUT, TOKEN_PATH),
        "the first request is for a token: {requests:?}"
    );
    // The SDK's default, six hours: one token serves the agent's whole start.
    assert_eq!(first.ttl_header.as_deref(), Some("21600"));
    let reads: Vec<&str> = requests
        .iter()
        .filter(|request| request.method == Method::GET)
        .inspect(|request| assert!(request.with_token, "{request:?} came without a token"))
        .map(|request| request.path.as_str())
        .collect();
    assert_eq!(
        reads,
        [
            "/latest/meta-data/instance-id",
            "/latest/meta-data/local-ipv4"
        ]
    );
}

/// However the metadata service starts slowly (it resets connections, it
/// accepts and says nothing, it answers 503), the agent keeps asking and
/// reads its identity once the service answers.
#[tokio::test]
async fn the_agent_waits_out_a_metadata_service_that_starts_slowly() {
    const SLOW: Duration = Duration::from_secs(3);
    for slow_start in [
        SlowStart::Refuses,
        SlowStart::Silent,
        SlowStart::Unavailable,
    ] {
        let imds = imds(ImdsOptions {
            slow_start,
            slow_start_for: SLOW,
        })
        .await;
        let (identity, took) = agent_identity(&imds).await;
        assert_eq!(
            identity.unwrap_or_else(|e| panic!("{slow_start:?}: {e}")),
            (INSTANCE_ID.to_owned(), LOCAL_IPV4),
            "{slow_start:?}"
        );
        assert!(took >= SLOW, "{slow_start:?}: answered after {took:?}");
    }
}

/// A service that never answers ends the start once the patience is spent,
/// with what could not be read and how long it waited.
#[tokio::test]
async fn the_agent_gives_up_once_its_patience_is_spent() {
    const PATIENCE: Duration = Duration::from_secs(2);
    let imds = imds(ImdsOptions {
        slow_start: SlowStart::Refuses,
        slow_start_for: Duration::from_secs(60),
    })
    .await;
    let (identity, took) = agent_identity_within(&imds, PATIENCE).await;
    let error = identity.expect_err("no identity from a service that answers nothing");
    assert!(
        error.to_string().contains("/latest/meta-data/instance-id"),
        "the error names what it could not read: {error}"
    );
    assert!(
        (Duration::from_millis(1000)..Duration::from_secs(5)).contains(&took),
        "gave up after {took:?}"
    );
}

#[tokio::test]
async fn an_instance_with_a_role_is_served_its_credentials_and_one_without_none() {
    let imds = imds(ImdsOptions::default()).await;
    let token = token(&imds, "60").await;
    let auth = [(TOKEN_HEADER, token.as_str())];
    let (status, _, _) = request(&imds, "GET", CREDENTIALS_PATH, &auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an instance without a role");

    let role = ImdsRole {
        name: "etcd-prod-NodeRole".to_owned(),
        access_key_id: "node-agent".to_owned(),
        secret_access_key: "stand-in".to_owned(),
    };
    imds.add_instance(
        LOCALHOST,
        ImdsInstance {
            instance_id: INSTANCE_ID.to_owned(),
            local_ipv4: LOCAL_IPV4,
            role: Some(role.clone()),
        },
    );
    let (status, _, listed) = request(&imds, "GET", CREDENTIALS_PATH, &auth).await;
    assert_eq!(
        (status, listed.as_str()),
        (StatusCode::OK, role.name.as_str())
    );
    let path = format!("{CREDENTIALS_PATH}{}", role.name);
    let (status, _, document) = request(&imds, "GET", &path, &auth).await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&document).expect("a JSON document");
    assert_eq!(document["Code"], "Success");
    assert_eq!(document["AccessKeyId"], "node-agent");
    assert_eq!(document["SecretAccessKey"], "stand-in");
    let expiration = document["Expiration"].as_str().expect("an expiration");
    assert!(
        humantime::parse_rfc3339(expiration).is_ok_and(|at| at > std::time::SystemTime::now()),
        "expiration {expiration:?} is a time to come"
    );

    let (status, _, _) = request(
        &imds,
        "GET",
        &format!("{CREDENTIALS_PATH}another-role"),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another role's credentials");
    let (status, _, _) = request(&imds, "GET", &path, &[]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "credentials without a token"
    );
}
