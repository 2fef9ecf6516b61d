//! What pins the code the stack runs to the code that was deployed: the SHA-256 of
//! the `etcd-aws` agent, which user-data checks before installing it (as it checks
//! etcd's archive against `EtcdSha256`), and the S3 object versions of the
//! functions' zips, which their `Code` names.
//!
//! Why versions for the functions and a checksum for the agent: Lambda takes a
//! zip from S3 by bucket, key and optionally version, and offers no checksum to
//! check it against (code signing would refuse the zips `cargo lambda deploy`
//! pushes). Without a version, a later stack update that touches a function, or
//! its replacement, takes whatever object then sits under the key: whoever can
//! write to the artifact bucket chooses the functions' code, silently. With one,
//! the stack runs the object that was uploaded by the deploy, and another object
//! under the same key gets a new version the stack never names. This needs the
//! artifact bucket versioned; `etcd-aws-cfn` refuses to deploy into one that is
//! not, and says how to turn versioning on. A node, by contrast, fetches the agent
//! itself at every boot, so it can check the file and refuse it.

use serde_json::json;

use crate::fragment::Fragment;
use crate::names::parameters::{AGENT_SHA256, BACKUP_CODE_VERSION, LIFECYCLE_CODE_VERSION};
use crate::options::{artifacts, Options};

/// The parameter holding the object version of the function zip `zip`.
pub fn code_version_parameter(zip: &str) -> &'static str {
    if zip == artifacts::LIFECYCLE_ZIP {
        LIFECYCLE_CODE_VERSION
    } else {
        BACKUP_CODE_VERSION
    }
}

fn code_version(zip: &str) -> serde_json::Value {
    json!({
        "Type": "String",
        "Description": format!(
            "S3 object version of {zip} in the artifact bucket: the functions run that object, never a later one under the same key (the bucket must be versioned; etcd-aws-cfn fills this in)"
        ),
        "MinLength": 1,
        "MaxLength": 1024,
        "AllowedPattern": "^[^\\s]+$",
        "ConstraintDescription": "an S3 object version id, as PutObject or HeadObject return it",
    })
}

pub fn fragment(options: &Options) -> Fragment {
    let mut agent = json!({
        "Type": "String",
        "Description": format!(
            "SHA-256 of the {} agent binary in the artifact bucket; user-data refuses a binary that does not match",
            artifacts::AGENT_BINARY
        ),
        "AllowedPattern": "^[0-9a-f]{64}$",
        "ConstraintDescription": "64 lowercase hexadecimal characters",
    });
    if let Some(sha) = &options.agent_sha256 {
        agent["Default"] = json!(sha.as_str());
    }
    Fragment::new()
        .parameter(AGENT_SHA256, agent)
        .parameter(
            LIFECYCLE_CODE_VERSION,
            code_version(artifacts::LIFECYCLE_ZIP),
        )
        .parameter(BACKUP_CODE_VERSION, code_version(artifacts::BACKUP_ZIP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_zip_has_a_version_parameter_of_its_own() {
        assert_eq!(
            code_version_parameter(artifacts::LIFECYCLE_ZIP),
            LIFECYCLE_CODE_VERSION
        );
        assert_eq!(
            code_version_parameter(artifacts::BACKUP_ZIP),
            BACKUP_CODE_VERSION
        );
    }
}
