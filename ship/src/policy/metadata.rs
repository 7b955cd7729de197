//! metadata.yml turned into the compact JSON Kubewarden embeds in the wasm.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

const PROTOCOL_VERSION: &str = "v1";
const USAGE_ANNOTATION: &str = "io.kubewarden.policy.usage";

/// The metadata document for `metadata_yaml`, with `protocolVersion` set and, when
/// given, the usage text (the README) as the `io.kubewarden.policy.usage` annotation.
pub fn embedded_metadata(metadata_yaml: &str, usage: Option<&str>) -> Result<Value> {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(metadata_yaml).context("metadata is not valid YAML")?;
    let mut metadata: Value =
        serde_json::to_value(yaml).context("metadata cannot be expressed as JSON")?;
    let Some(fields) = metadata.as_object_mut() else {
        bail!("metadata must be a mapping");
    };
    if !fields.get("rules").is_some_and(Value::is_array) {
        bail!("metadata has no `rules` list");
    }
    fields.insert(
        "protocolVersion".into(),
        Value::String(PROTOCOL_VERSION.into()),
    );
    if let Some(usage) = usage {
        let annotations = fields
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .context("metadata `annotations` must be a mapping")?;
        annotations.insert(USAGE_ANNOTATION.into(), Value::String(usage.into()));
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_protocol_version_and_usage() {
        let metadata = embedded_metadata(
            "rules: []\nmutating: true\nannotations:\n  a: b\n",
            Some("# Usage"),
        )
        .unwrap();
        assert_eq!(metadata["protocolVersion"], "v1");
        assert_eq!(metadata["mutating"], true);
        assert_eq!(metadata["annotations"]["a"], "b");
        assert_eq!(
            metadata["annotations"]["io.kubewarden.policy.usage"],
            "# Usage"
        );
    }

    #[test]
    fn refuses_what_is_not_policy_metadata() {
        assert!(
            embedded_metadata("- a", None)
                .unwrap_err()
                .to_string()
                .contains("mapping")
        );
        assert!(
            embedded_metadata("mutating: true", None)
                .unwrap_err()
                .to_string()
                .contains("rules")
        );
        assert!(
            embedded_metadata("rules: [", None)
                .unwrap_err()
                .to_string()
                .contains("YAML")
        );
    }
}
