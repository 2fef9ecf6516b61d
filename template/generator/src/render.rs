//! Writing a template as JSON or YAML.

use std::str::FromStr;

use serde_json::Value;

/// CloudFormation refuses a `TemplateBody` longer than this many bytes; the
/// generated template must fit in it to deploy without an upload.
pub const TEMPLATE_BODY_LIMIT: usize = 51_200;
/// CloudFormation refuses a template read from S3 larger than this; a deploy
/// stages a template over [`TEMPLATE_BODY_LIMIT`] in S3.
pub const TEMPLATE_URL_LIMIT: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("format {0:?} is neither \"json\" nor \"yaml\"")]
    UnknownFormat(String),
    #[error("could not write the template as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not write the template as YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
}

impl FromStr for Format {
    type Err = RenderError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            other => Err(RenderError::UnknownFormat(other.to_string())),
        }
    }
}

/// The template as text a person reads: pretty JSON or block YAML, ending in a newline.
pub fn render(template: &Value, format: Format) -> Result<String, RenderError> {
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(template)?,
        Format::Yaml => serde_norway::to_string(template)?,
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The template as compact JSON, for the CloudFormation API whose body limit counts bytes.
pub fn compact(template: &Value) -> Result<String, RenderError> {
    Ok(serde_json::to_string(template)?)
}
