//! Who this node is: instance id and private IP, from IMDSv2 unless given.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path} from the instance metadata service (IMDSv2): {message}; off EC2, pass --instance-id and --private-ip")]
    Imds { path: &'static str, message: String },
    #[error("instance metadata returned {value:?} as the private IP, which is not an IP address")]
    BadIp { value: String },
}

/// Reads what is missing from IMDSv2; values already given win.
pub async fn resolve(
    instance_id: Option<String>,
    private_ip: Option<IpAddr>,
) -> Result<(String, IpAddr), IdentityError> {
    if let (Some(id), Some(ip)) = (&instance_id, private_ip) {
        return Ok((id.clone(), ip));
    }
    let client = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .max_attempts(2)
        .build();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(path)
                .await
                .map(String::from)
                .map_err(|e| IdentityError::Imds {
                    path,
                    message: crate::error_chain::error_chain(&e),
                })
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
