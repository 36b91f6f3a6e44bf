//! The README's configuration reference names every field the loader accepts.

use kasm_scale::config::{
    AutoScaleConfig, AwsVmConfig, AzureVmConfig, CheckinTokenConfig, LdapConfig, MemoryVmConfig,
    Pool, Schedule, Workspace, Zone,
};
use serde::de::DeserializeOwned;

/// The field names of `T`, read from serde's "unknown field" message.
fn fields<T: DeserializeOwned>() -> Vec<String> {
    let err = serde_json::from_str::<T>(r#"{"zz-not-a-field": 0}"#)
        .err()
        .expect("an unknown field is refused")
        .to_string();
    let list = err
        .split_once("expected")
        .expect("serde lists the fields")
        .1;
    let names: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!names.is_empty(), "{err}");
    names
}

#[test]
fn every_field_is_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let all = [
        fields::<Zone>(),
        fields::<LdapConfig>(),
        fields::<AwsVmConfig>(),
        fields::<AzureVmConfig>(),
        fields::<MemoryVmConfig>(),
        fields::<Pool>(),
        fields::<AutoScaleConfig>(),
        fields::<Schedule>(),
        fields::<Workspace>(),
        fields::<CheckinTokenConfig>(),
    ];
    let missing: Vec<&String> = all
        .iter()
        .flatten()
        .filter(|f| !readme.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields missing from the README: {missing:?}"
    );
    assert!(all.iter().map(Vec::len).sum::<usize>() > 80);
}
