//! CloudFormation's `Fn::Sub` on a string, as the service applies it when it creates
//! the stack: for tests that check what a node is given rather than the template's
//! text (the rendered user-data's static checks, and the test nodes that boot from it).
//!
//! The documented rules: `${Name}` (a parameter, a pseudo parameter such as
//! `${AWS::Region}`, a logical id) and `${Resource.Attribute}` are replaced by their
//! value; `${!Literal}` is written as `${Literal}`; a `$` not followed by `{` is plain
//! text. CloudFormation refuses a template whose `Fn::Sub` names something it does
//! not know, and so does [`render`]: a test must never check a script with a hole in it.

/// Why a string could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubError {
    /// `${name}` names no value the caller gave.
    #[error(
        "Fn::Sub names ${{{0}}}, which has no value here: give it one in the values, or fix the name"
    )]
    Unknown(String),
    /// A `${` at this byte offset has no closing `}`.
    #[error(
        "Fn::Sub has a `${{` at byte {0} that is never closed: CloudFormation would refuse it"
    )]
    Unclosed(usize),
}

/// `text` with every `${...}` of `Fn::Sub` resolved from `values` (name, value).
pub fn render(text: &str, values: &[(String, String)]) -> Result<String, SubError> {
    let mut rendered = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rendered.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SubError::Unclosed(text.len() - rest.len() + start))?;
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(literal) => {
                rendered.push_str("${");
                rendered.push_str(literal);
                rendered.push('}');
            }
            None => {
                let (_, value) = values
                    .iter()
                    .find(|(known, _)| known == name)
                    .ok_or_else(|| SubError::Unknown(name.to_string()))?;
                rendered.push_str(value);
            }
        }
        rest = &after[end + 1..];
    }
    rendered.push_str(rest);
    Ok(rendered)
}
