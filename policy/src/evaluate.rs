//! The policy's one decision: given an admission request, accept it, reject it with a
//! message, or accept it mutated.

use oras_contract::annotations::{self as keys};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::annotations::{OrasAnnotations, read};
use crate::image::ImageLookup;
use crate::inject::{has_share_volume, inject};
use crate::plan::Plan;
use crate::settings::Settings;
use crate::workload::{describe, pod_template_pointer};

const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accept,
    Reject(String),
    Mutate {
        object: Value,
        warnings: Vec<String>,
    },
}

/// The part of an AdmissionReview's `request` the policy reads. Every field may be
/// absent or `null`; everything else in the request is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AdmissionRequest {
    pub kind: Option<GroupVersionKind>,
    pub operation: Option<String>,
    pub namespace: Option<String>,
    pub object: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GroupVersionKind {
    pub kind: Option<String>,
}

/// Decides what to do with `request` under `settings`. `lookup` resolves the image of a
/// launcher without `command`; it is called only then, for an object being rewritten.
pub fn evaluate(request: AdmissionRequest, settings: &Settings, lookup: ImageLookup) -> Outcome {
    let AdmissionRequest {
        kind,
        operation,
        namespace,
        mut object,
    } = request;
    let kind = kind.and_then(|k| k.kind).unwrap_or_default();
    let operation = operation.unwrap_or_default();
    let namespace = namespace.unwrap_or_default();
    if object.is_null() || !matches!(operation.as_str(), "CREATE" | "UPDATE") {
        return Outcome::Accept;
    }
    let Some(pointer) = pod_template_pointer(&kind) else {
        return Outcome::Accept;
    };
    // A running pod's spec cannot change; only its creation is ours to shape.
    if kind == "Pod" && operation != "CREATE" {
        return Outcome::Accept;
    }
    let annotations = match read(annotations_of(&object)) {
        Ok(Some(annotations)) => annotations,
        Ok(None) => return Outcome::Accept,
        Err(message) => return Outcome::Reject(message),
    };
    // Already rewritten, or nothing to pull or push (a workflow tool may template every
    // key and leave unused ones "NA"): the pod runs as it is.
    if annotations.injected || (annotations.inputs.is_empty() && annotations.output.is_none()) {
        return Outcome::Accept;
    }
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &namespace
        })
        .to_string();
    match mutate(
        &mut object,
        pointer,
        &annotations,
        settings,
        &namespace,
        lookup,
    ) {
        Ok(true) => Outcome::Mutate {
            object,
            warnings: annotations.warnings,
        },
        Ok(false) => Outcome::Accept,
        Err(message) => Outcome::Reject(message),
    }
}

fn annotations_of(object: &Value) -> Option<&Map<String, Value>> {
    object.pointer("/metadata/annotations")?.as_object()
}

/// Injects into the pod template at `pointer`; `Ok(false)` when it was injected before.
fn mutate(
    object: &mut Value,
    pointer: &str,
    annotations: &OrasAnnotations,
    settings: &Settings,
    namespace: &str,
    lookup: ImageLookup,
) -> Result<bool, String> {
    let plan = Plan::new(annotations, settings, namespace)?;
    let template = object
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("{} is missing or not an object", describe(pointer)))?;
    let already_marked = template
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(keys::key(keys::INJECTED)))
        .is_some_and(|v| v == "true");
    let spec = template
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("{} has no spec", describe(pointer)))?;
    if already_marked || has_share_volume(spec) {
        return Ok(false);
    }
    inject(spec, &plan, &settings.agent_resources, lookup)?;
    mark_injected(template, pointer)?;
    Ok(true)
}

/// Adds the marker annotation to the template's metadata, creating what is absent.
fn mark_injected(template: &mut Map<String, Value>, pointer: &str) -> Result<(), String> {
    let not_an_object = |field: &str| format!("{}.{field} is not an object", describe(pointer));
    let metadata = template
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if metadata.is_null() {
        *metadata = Value::Object(Map::new());
    }
    let metadata = metadata
        .as_object_mut()
        .ok_or_else(|| not_an_object("metadata"))?;
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    annotations
        .as_object_mut()
        .ok_or_else(|| not_an_object("metadata.annotations"))?
        .insert(keys::key(keys::INJECTED), Value::String("true".into()));
    Ok(())
}
