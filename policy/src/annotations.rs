//! Reads the `oras.converged-computing.github.io/` annotations of an object into what
//! they ask for, refusing anything ambiguous with a message naming key and value.

use oras_contract::annotations::{self as keys, PREFIX, UNSET};
use serde_json::{Map, Value};

use crate::names::{check_dns_label, check_dns_subdomain, check_image};
use crate::reference::{Reference, check_reference_registry};

/// Longest annotation value taken; the API server allows far more, nothing here needs it.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most inputs one pod may list.
pub const MAX_INPUTS: usize = 64;
const MAX_QUOTED_VALUE: usize = 80;

/// What an object's annotations ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrasAnnotations {
    /// Already mutated (the marker is present): leave it alone.
    pub injected: bool,
    pub cache: Option<String>,
    /// Inputs in application order: `input-uri` first, then `input-uri_1`, `input-uri_2`...
    pub inputs: Vec<Reference>,
    pub output: Option<Reference>,
    pub registry: Option<String>,
    pub agent_image: Option<String>,
    /// What the step asks of the agents, carried into the plan as it is.
    pub step: StepOptions,
    /// Things the user should know about but that do not stop the pod.
    pub warnings: Vec<String>,
}

/// The annotations the plan takes over unchanged: where the application reads and writes,
/// which container it is, and how the agents behave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOptions {
    pub input_path: Option<String>,
    pub output_path: Option<String>,
    pub output_pipe: Option<String>,
    pub container: Option<String>,
    pub oras_env: Option<String>,
    pub unpack: bool,
    pub debug: bool,
    pub push_on_failure: bool,
    pub memoize: bool,
}

/// Reads the contract's annotations from `annotations` (an object's
/// `metadata.annotations`). `None` when there is none of them.
pub fn read(annotations: Option<&Map<String, Value>>) -> Result<Option<OrasAnnotations>, String> {
    let Some(annotations) = annotations else {
        return Ok(None);
    };
    let mut found = false;
    let mut read = OrasAnnotations {
        step: StepOptions {
            unpack: true,
            ..StepOptions::default()
        },
        ..OrasAnnotations::default()
    };
    let mut numbered_inputs: Vec<(u32, &str, Reference)> = Vec::new();
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        found = true;
        let value = value
            .as_str()
            .ok_or_else(|| format!("annotation {key} must be a string, not {value}"))?;
        if value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "annotation {key} is {} characters long; at most {MAX_VALUE_LEN} are allowed",
                value.len()
            ));
        }
        if value == UNSET {
            continue;
        }
        let bad = |problem: &str| format!("annotation {key}={} {problem}", quote(value));
        if let Some(suffix) = list_suffix(name) {
            let number = parse_list_number(suffix).map_err(|p| bad(&p))?;
            let reference = Reference::parse(value).map_err(|p| bad(&p))?;
            numbered_inputs.push((number, key, reference));
            continue;
        }
        match name {
            keys::INJECTED => read.injected = parse_bool(value).map_err(|p| bad(&p))?,
            keys::ORAS_CACHE => {
                check_dns_label(value).map_err(|p| bad(&p))?;
                read.cache = Some(value.to_string());
            }
            keys::INPUT_URI => {
                numbered_inputs.push((0, key, Reference::parse(value).map_err(|p| bad(&p))?))
            }
            keys::OUTPUT_URI => read.output = Some(Reference::parse(value).map_err(|p| bad(&p))?),
            keys::INPUT_PATH => read.step.input_path = Some(path(value).map_err(|p| bad(&p))?),
            keys::OUTPUT_PATH => read.step.output_path = Some(path(value).map_err(|p| bad(&p))?),
            keys::OUTPUT_PIPE => read.step.output_pipe = Some(path(value).map_err(|p| bad(&p))?),
            keys::CONTAINER => read.step.container = Some(value.to_string()),
            keys::REGISTRY => {
                check_reference_registry(value).map_err(|p| bad(&p))?;
                read.registry = Some(value.to_string());
            }
            keys::ORAS_ENV => {
                check_dns_subdomain(value).map_err(|p| bad(&p))?;
                read.step.oras_env = Some(value.to_string());
            }
            keys::ORAS_CONTAINER => {
                check_image(value).map_err(|p| bad(&p))?;
                read.agent_image = Some(value.to_string());
            }
            keys::UNPACK => read.step.unpack = parse_bool(value).map_err(|p| bad(&p))?,
            keys::DEBUG => read.step.debug = parse_bool(value).map_err(|p| bad(&p))?,
            keys::PUSH_ON_FAILURE => {
                read.step.push_on_failure = parse_bool(value).map_err(|p| bad(&p))?
            }
            keys::MEMOIZE => read.step.memoize = parse_bool(value).map_err(|p| bad(&p))?,
            keys::ENTRYPOINT | keys::ORAS_ENTRYPOINT => read.warnings.push(format!(
                "annotation {key} is ignored: oras-operator no longer downloads scripts at pod start"
            )),
            _ => {
                return Err(format!(
                    "unknown annotation {key}; known keys under {PREFIX} are {}, and {}_<n> for several inputs",
                    keys::SINGLE_KEYS.join(", "),
                    keys::INPUT_URI
                ));
            }
        }
    }
    if !found {
        return Ok(None);
    }
    read.inputs = order_inputs(numbered_inputs)?;
    match (&read.output, &read.step.output_path) {
        (Some(output), None) => {
            return Err(format!(
                "annotation {}={} needs {} too: name the file or directory to push",
                keys::key(keys::OUTPUT_URI),
                quote(&output.to_string()),
                keys::key(keys::OUTPUT_PATH)
            ));
        }
        (None, Some(path)) => {
            return Err(format!(
                "annotation {}={} needs {} too: name the reference to push it to",
                keys::key(keys::OUTPUT_PATH),
                quote(path),
                keys::key(keys::OUTPUT_URI)
            ));
        }
        _ => {}
    }
    Ok(Some(read))
}

/// The suffix of `input-uri_<suffix>`, if `name` is a list key.
fn list_suffix(name: &str) -> Option<&str> {
    name.strip_prefix(keys::INPUT_URI)?
        .strip_prefix(keys::LIST_SEPARATOR)
}

fn parse_list_number(suffix: &str) -> Result<u32, String> {
    if suffix.is_empty() || !suffix.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "has a non-numeric list suffix {suffix:?}: write {}_1, {}_2, ...",
            keys::INPUT_URI,
            keys::INPUT_URI
        ));
    }
    match suffix.parse::<u32>() {
        Ok(n) if n >= 1 && n as usize <= MAX_INPUTS => Ok(n),
        _ => Err(format!(
            "has list suffix {suffix:?}: suffixes count from 1 to {MAX_INPUTS}"
        )),
    }
}

/// Orders inputs by suffix (the plain `input-uri` counts as 0) and refuses duplicates
/// (`_1` and `_01`) and gaps (`_1`, `_3`).
fn order_inputs(mut numbered: Vec<(u32, &str, Reference)>) -> Result<Vec<Reference>, String> {
    numbered.sort_by_key(|(number, key, _)| (*number, key.to_string()));
    for pair in numbered.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(format!(
                "annotations {} and {} give the same input number {}",
                pair[0].1, pair[1].1, pair[0].0
            ));
        }
    }
    let listed = numbered.iter().filter(|(n, _, _)| *n > 0);
    for (expected, (number, key, _)) in (1..).zip(listed) {
        if *number != expected {
            return Err(format!(
                "annotation {key} leaves a gap: {}_{expected} is missing (numbering starts at 1 without gaps)",
                keys::key(keys::INPUT_URI)
            ));
        }
    }
    Ok(numbered.into_iter().map(|(_, _, r)| r).collect())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be \"true\" or \"false\"".into()),
    }
}

fn path(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("is empty (use \"NA\" to leave it unset)".into());
    }
    if value.contains('\0') {
        return Err("contains a NUL character".into());
    }
    Ok(value.to_string())
}

/// Quotes a value for a message, shortened when it is very long.
fn quote(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED_VALUE {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX_QUOTED_VALUE).collect();
        format!("{head:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_json(value: Value) -> Result<Option<OrasAnnotations>, String> {
        read(value.as_object())
    }

    fn refs(read: &OrasAnnotations) -> Vec<String> {
        read.inputs.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn objects_without_the_prefix_are_not_ours() {
        assert_eq!(read(None), Ok(None));
        assert_eq!(
            read_json(json!({"app": "x", "other.io/input-uri": "a"})),
            Ok(None)
        );
    }

    #[test]
    fn defaults_are_those_of_the_original() {
        let read = read_json(json!({"oras.converged-computing.github.io/input-uri": "a/b:c"}))
            .unwrap()
            .unwrap();
        assert!(read.step.unpack);
        assert!(!read.step.debug);
        assert!(!read.step.push_on_failure);
        assert_eq!(read.cache, None);
        assert_eq!(refs(&read), ["a/b:c"]);
    }

    #[test]
    fn na_means_unset() {
        let read = read_json(json!({
            "oras.converged-computing.github.io/input-uri": "NA",
            "oras.converged-computing.github.io/output-uri": "NA",
            "oras.converged-computing.github.io/output-path": "NA",
            "oras.converged-computing.github.io/registry": "NA",
        }))
        .unwrap()
        .unwrap();
        assert!(read.inputs.is_empty());
        assert_eq!(read.output, None);
        assert_eq!(read.registry, None);
    }

    #[test]
    fn list_inputs_follow_their_numbers_not_the_map_order() {
        let read = read_json(json!({
            "oras.converged-computing.github.io/input-uri_10": "ten",
            "oras.converged-computing.github.io/input-uri_2": "two",
            "oras.converged-computing.github.io/input-uri": "plain",
            "oras.converged-computing.github.io/input-uri_1": "one",
            "oras.converged-computing.github.io/input-uri_3": "three",
            "oras.converged-computing.github.io/input-uri_4": "four",
            "oras.converged-computing.github.io/input-uri_5": "five",
            "oras.converged-computing.github.io/input-uri_6": "six",
            "oras.converged-computing.github.io/input-uri_7": "seven",
            "oras.converged-computing.github.io/input-uri_8": "eight",
            "oras.converged-computing.github.io/input-uri_9": "nine",
        }))
        .unwrap()
        .unwrap();
        assert_eq!(
            refs(&read),
            [
                "plain", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten"
            ]
        );
    }

    #[test]
    fn list_suffix_problems_are_refused() {
        let cases = [
            (
                json!({"oras.converged-computing.github.io/input-uri_x": "a"}),
                "non-numeric list suffix \"x\"",
            ),
            (
                json!({"oras.converged-computing.github.io/input-uri_": "a"}),
                "non-numeric list suffix \"\"",
            ),
            (
                json!({"oras.converged-computing.github.io/input-uri_0": "a"}),
                "count from 1",
            ),
            (
                json!({"oras.converged-computing.github.io/input-uri_1": "a", "oras.converged-computing.github.io/input-uri_01": "b"}),
                "give the same input number 1",
            ),
            (
                json!({"oras.converged-computing.github.io/input-uri_1": "a", "oras.converged-computing.github.io/input-uri_3": "b"}),
                "input-uri_3 leaves a gap: oras.converged-computing.github.io/input-uri_2 is missing",
            ),
        ];
        for (annotations, expected) in cases {
            let message = read_json(annotations.clone()).unwrap_err();
            assert!(message.contains(expected), "{annotations}: {message}");
        }
    }

    #[test]
    fn output_uri_and_output_path_come_together() {
        let message =
            read_json(json!({"oras.converged-computing.github.io/output-uri": "a:b"})).unwrap_err();
        assert_eq!(
            message,
            "annotation oras.converged-computing.github.io/output-uri=\"a:b\" needs oras.converged-computing.github.io/output-path too: name the file or directory to push"
        );
        let message = read_json(json!({"oras.converged-computing.github.io/output-path": "out"}))
            .unwrap_err();
        assert!(
            message.contains(
                "output-path=\"out\" needs oras.converged-computing.github.io/output-uri"
            ),
            "{message}"
        );
    }

    #[test]
    fn values_are_checked_and_named() {
        let cases = [
            (
                "input-uri",
                "Bad/Ref",
                "input-uri=\"Bad/Ref\" has an invalid repository",
            ),
            (
                "oras-cache",
                "Not_A_Name",
                "oras-cache=\"Not_A_Name\" is not a valid name",
            ),
            (
                "registry",
                "https://ghcr.io",
                "registry=\"https://ghcr.io\" must not have a scheme",
            ),
            (
                "oras-env",
                "bad env",
                "oras-env=\"bad env\" is not a valid name",
            ),
            (
                "oras-container",
                "a b",
                "oras-container=\"a b\" must not contain whitespace",
            ),
            (
                "unpack",
                "yes",
                "unpack=\"yes\" must be \"true\" or \"false\"",
            ),
            ("debug", "1", "debug=\"1\" must be"),
            ("push-on-failure", "", "push-on-failure=\"\" must be"),
            ("input-path", "", "input-path=\"\" is empty"),
            // Found by fuzzing (fuzz/, target references): a valid host without a dot
            // or port is read by the agent as the first component of the repository.
            (
                "registry",
                "reg0",
                "registry=\"reg0\" would be read as a repository path, not a registry",
            ),
        ];
        for (name, value, expected) in cases {
            let message = read_json(json!({ keys::key(name): value })).unwrap_err();
            assert!(message.contains(expected), "{name}: {message}");
        }
    }

    #[test]
    fn unknown_keys_and_non_strings_are_refused() {
        let message =
            read_json(json!({"oras.converged-computing.github.io/output-uir": "a"})).unwrap_err();
        assert!(
            message
                .starts_with("unknown annotation oras.converged-computing.github.io/output-uir;")
        );
        assert!(message.contains("output-uri"));
        let message =
            read_json(json!({"oras.converged-computing.github.io/debug": true})).unwrap_err();
        assert_eq!(
            message,
            "annotation oras.converged-computing.github.io/debug must be a string, not true"
        );
    }

    #[test]
    fn long_values_are_refused_and_quoted_short() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        let message =
            read_json(json!({"oras.converged-computing.github.io/output-pipe": long})).unwrap_err();
        assert!(message.contains("4097 characters long"), "{message}");
        let bad_ref = format!("{}:!", "a".repeat(200));
        let message = read_json(json!({"oras.converged-computing.github.io/input-uri": bad_ref}))
            .unwrap_err();
        assert!(message.len() < 400, "{message}");
    }

    #[test]
    fn the_original_script_annotations_are_ignored_with_a_warning() {
        let read = read_json(json!({
            "oras.converged-computing.github.io/entrypoint": "https://example.com/e.sh",
            "oras.converged-computing.github.io/oras-entrypoint": "https://example.com/o.sh",
        }))
        .unwrap()
        .unwrap();
        assert_eq!(read.warnings.len(), 2);
        assert!(read.warnings[0].contains("is ignored"));
    }

    #[test]
    fn booleans_and_the_marker() {
        let read = read_json(json!({
            "oras.converged-computing.github.io/unpack": "False",
            "oras.converged-computing.github.io/debug": "TRUE",
            "oras.converged-computing.github.io/push-on-failure": "true",
            "oras.converged-computing.github.io/injected": "true",
        }))
        .unwrap()
        .unwrap();
        assert!(!read.step.unpack && read.step.debug && read.step.push_on_failure && read.injected);
    }
}
