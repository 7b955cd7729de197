//! The policy as Kubewarden ships it: an OCI image manifest whose config is
//! `application/vnd.wasm.config.v1+json` (`{}`) and whose one layer is the annotated
//! wasm, with the metadata's single-line annotations on the manifest. Also the checks
//! that keep an unfinished policy from being pushed.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::build_info::SOURCE;
use crate::policy::METADATA_SECTION;
use crate::policy::wasm_sections::read_custom;

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
pub const CONFIG_CONTENT: &[u8] = b"{}";
pub const LAYER_TITLE: &str = "policy.wasm";

/// Annotations every pushed policy must carry in its metadata.
pub const REQUIRED_ANNOTATIONS: &[&str] = &[
    "io.kubewarden.policy.title",
    "io.kubewarden.policy.description",
    "io.kubewarden.policy.version",
    "io.kubewarden.policy.author",
    "io.kubewarden.policy.url",
    "io.kubewarden.policy.source",
    "io.kubewarden.policy.license",
];
const VERSION_ANNOTATION: &str = "io.kubewarden.policy.version";

/// The metadata embedded in an annotated wasm, checked for pushing as `version`.
pub fn checked_metadata(module: &[u8], version: &str) -> Result<Value> {
    let section = read_custom(module, METADATA_SECTION)?.with_context(|| {
        format!("the wasm has no {METADATA_SECTION} section: annotate it first (make annotated-policy.wasm)")
    })?;
    let metadata: Value = serde_json::from_slice(&section)
        .with_context(|| format!("the {METADATA_SECTION} section is not JSON"))?;
    let annotations = metadata["annotations"].as_object();
    let missing: Vec<&str> = REQUIRED_ANNOTATIONS
        .iter()
        .copied()
        .filter(|key| {
            annotations
                .and_then(|a| a.get(*key))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "the policy metadata lacks required annotations: {}",
            missing.join(", ")
        );
    }
    let declared = metadata["annotations"][VERSION_ANNOTATION]
        .as_str()
        .unwrap_or_default();
    if declared != version {
        bail!(
            "the policy metadata says {VERSION_ANNOTATION}: {declared:?}, but the crate version is {version:?}: update metadata.yml"
        );
    }
    Ok(metadata)
}

/// The manifest annotations: every single-line metadata annotation, plus the source.
pub fn manifest_annotations(metadata: &Value, source: &str) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = metadata["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .filter(|(_, value)| !value.contains('\n'))
        .collect();
    annotations.insert(SOURCE.to_string(), source.to_string());
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::wasm_sections::replace_custom;
    use serde_json::json;

    fn annotated(metadata: &Value) -> Vec<u8> {
        let module = b"\0asm\x01\0\0\0".to_vec();
        replace_custom(
            &module,
            METADATA_SECTION,
            &serde_json::to_vec(metadata).unwrap(),
        )
        .unwrap()
    }

    fn complete(version: &str) -> Value {
        let mut annotations: serde_json::Map<String, Value> = REQUIRED_ANNOTATIONS
            .iter()
            .map(|k| (k.to_string(), json!("x")))
            .collect();
        annotations.insert(VERSION_ANNOTATION.into(), json!(version));
        annotations.insert(
            "io.kubewarden.policy.usage".into(),
            json!("# Title\n\ntext"),
        );
        json!({"rules": [], "annotations": annotations})
    }

    #[test]
    fn a_complete_policy_passes() {
        assert!(checked_metadata(&annotated(&complete("1.2.3")), "1.2.3").is_ok());
    }

    #[test]
    fn a_wasm_without_metadata_is_refused() {
        let error = checked_metadata(b"\0asm\x01\0\0\0", "1")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("has no io.kubewarden.metadata section"),
            "{error}"
        );
    }

    #[test]
    fn a_version_other_than_the_crate_is_refused() {
        let error = checked_metadata(&annotated(&complete("0.0.9")), "0.1.0")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "the policy metadata says io.kubewarden.policy.version: \"0.0.9\", but the crate version is \"0.1.0\": update metadata.yml"
        );
    }

    #[test]
    fn missing_required_annotations_are_listed() {
        let mut metadata = complete("1");
        let annotations = metadata["annotations"].as_object_mut().unwrap();
        annotations.remove("io.kubewarden.policy.license");
        annotations.insert("io.kubewarden.policy.source".into(), json!(""));
        let error = checked_metadata(&annotated(&metadata), "1")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "the policy metadata lacks required annotations: io.kubewarden.policy.source, io.kubewarden.policy.license"
        );
    }

    #[test]
    fn manifest_annotations_skip_multi_line_values_and_add_the_source() {
        let annotations = manifest_annotations(&complete("1"), "https://src");
        assert_eq!(annotations[SOURCE], "https://src");
        assert_eq!(annotations[VERSION_ANNOTATION], "1");
        assert!(!annotations.contains_key("io.kubewarden.policy.usage"));
    }
}
