//! The user-data as a node receives it: rendered as CloudFormation renders its
//! `Fn::Sub`.

mod common;

use common::fn_sub::{self, SubError};

#[test]
fn fn_sub_rendering_fills_in_every_variable_and_writes_literals_as_cloudformation_does() {
    let values: Vec<(String, String)> = [
        ("Bucket", "b"),
        ("AWS::Region", "eu-west-1"),
        ("Balancer.DNSName", "lb.example"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    for (text, rendered) in [
        (
            "no variables, $HOME and a lone $",
            "no variables, $HOME and a lone $",
        ),
        ("s3://${Bucket}/key", "s3://b/key"),
        ("${AWS::Region}", "eu-west-1"),
        ("${Balancer.DNSName}:2379", "lb.example:2379"),
        ("${Bucket}${Bucket}", "bb"),
        ("${!Literal} stays", "${Literal} stays"),
        ("${!Bucket}", "${Bucket}"),
        ("$${Bucket}", "$b"),
        ("", ""),
    ] {
        assert_eq!(
            fn_sub::render(text, &values).as_deref(),
            Ok(rendered),
            "rendering {text:?}"
        );
    }
}

#[test]
fn fn_sub_rendering_refuses_a_variable_it_has_no_value_for_or_one_never_closed() {
    let values = vec![("Bucket".to_string(), "b".to_string())];
    for (text, error) in [
        ("${Unknown}", SubError::Unknown("Unknown".to_string())),
        (
            "${Bucket} ${AWS::Region}",
            SubError::Unknown("AWS::Region".to_string()),
        ),
        ("${ Bucket }", SubError::Unknown(" Bucket ".to_string())),
        ("${}", SubError::Unknown(String::new())),
        ("${Bucket} ${Bucket", SubError::Unclosed(10)),
    ] {
        assert_eq!(
            fn_sub::render(text, &values),
            Err(error),
            "rendering {text:?}"
        );
    }
}
