//! Who this node is: instance id and private IP, from IMDSv2 unless given.
//!
//! At an instance's first boot the metadata service may refuse, stay silent
//! or answer 503 for a while; the SDK's client retries only the last, once.
//! So each read is asked again, with a growing pause, for as long as the
//! caller's patience lasts, and only then does the start fail.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// How long a start waits for the metadata service by default.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);
/// The first pause between two attempts, doubled up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path} from the instance metadata service (IMDSv2) within {waited:?}: {message}; on EC2 check the instance's metadata options (HttpEndpoint enabled, hop limit), off EC2 pass --instance-id and --private-ip")]
    Imds {
        path: &'static str,
        message: String,
        waited: Duration,
    },
    #[error("instance metadata returned {value:?} as the private IP, which is not an IP address")]
    BadIp { value: String },
}

/// Reads what is missing from IMDSv2, asking again for up to `patience`;
/// values already given win.
pub async fn resolve(
    instance_id: Option<String>,
    private_ip: Option<IpAddr>,
    patience: Duration,
) -> Result<(String, IpAddr), IdentityError> {
    if let (Some(id), Some(ip)) = (&instance_id, private_ip) {
        return Ok((id.clone(), ip));
    }
    let client = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .max_attempts(2)
        .build();
    let started = Instant::now();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let mut pause = FIRST_PAUSE;
            loop {
                match client.get(path).await {
                    Ok(value) => return Ok(String::from(value)),
                    Err(error) => {
                        let message = crate::error_chain::error_chain(&error);
                        if started.elapsed() + pause >= patience {
                            return Err(IdentityError::Imds {
                                path,
                                message,
                                waited: started.elapsed(),
                            });
                        }
                        tracing::info!(path, error = %message, retry_in_ms = pause.as_millis() as u64,
                            "the instance metadata service did not answer yet; asking again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(LONGEST_PAUSE);
                    }
                }
            }
        }
    };
    let id = match instance_id {
        Some(id) => id,
        None => get("/latest/meta-data/instance-id").await?,
    };
    let ip = match private_ip {
        Some(ip) => ip,
        None => {
            let value = get("/latest/meta-data/local-ipv4").await?;
            value
                .trim()
                .parse()
                .map_err(|_| IdentityError::BadIp { value })?
        }
    };
    Ok((id, ip))
}
