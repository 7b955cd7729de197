//! Pinning values in a chart's `values.yaml` while keeping its comments (what
//! `helm show values` prints): the lines of the keys are rewritten in place, then the
//! whole file is parsed again and must equal the original with those values set.

use anyhow::{Context, Result, bail};
use serde_yaml::Value;

/// `text` with each `(parent, key)` of `pins` set to its string value. Both levels
/// must already exist: a pin never invents a value the chart does not know.
pub fn pin_values(text: &str, pins: &[(&str, &str, &str)]) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (parent, key, value) in pins {
        let line = find_nested_key(&lines, parent, key)
            .with_context(|| format!("values.yaml has no {parent}.{key} to pin"))?;
        let indent = lines[line].len() - lines[line].trim_start().len();
        // A JSON string is a YAML double-quoted scalar.
        lines[line] = format!(
            "{}{key}: {}",
            " ".repeat(indent),
            serde_json::to_string(value)?
        );
    }
    let mut pinned = lines.join("\n");
    if text.ends_with('\n') {
        pinned.push('\n');
    }

    let mut expected: Value = serde_yaml::from_str(text).context("values.yaml is not YAML")?;
    for (parent, key, value) in pins {
        expected[*parent][*key] = Value::from(*value);
    }
    let got: Value = serde_yaml::from_str(&pinned).context("pinned values.yaml is not YAML")?;
    if got != expected {
        bail!("pinning {pins:?} in values.yaml changed more than those values");
    }
    Ok(pinned)
}

/// `text` with `<parent>.repository` and `<parent>.digest` (`image` for the controller,
/// `agentImage` for the agent) set from `reference` (`host[:port]/path@sha256:...`): the
/// chart then runs exactly that image.
pub fn pin_image(text: &str, parent: &str, reference: &str) -> Result<String> {
    let Some((repository, digest)) = reference.split_once('@') else {
        bail!(
            "image {reference:?} has no digest: give REPOSITORY@sha256:... (what push-images prints)"
        );
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        bail!("image {reference:?}: {digest:?} is not a sha256 digest");
    }
    crate::registry::parse_repository(repository)
        .with_context(|| format!("image {reference:?}"))?;
    pin_values(
        text,
        &[
            (parent, "repository", repository),
            (parent, "digest", digest),
        ],
    )
}

/// The line of `key:` inside the top-level mapping `parent:`.
fn find_nested_key(lines: &[String], parent: &str, key: &str) -> Option<usize> {
    let is_key = |line: &str, name: &str| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(':'))
    };
    let start = lines.iter().position(|line| is_key(line, parent))?;
    let block = lines[start + 1..]
        .iter()
        .take_while(|line| line.trim().is_empty() || line.starts_with([' ', '#']));
    let mut child_indent = None;
    for (offset, line) in block.enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        // Only direct children: the first key's indentation is theirs.
        if *child_indent.get_or_insert(indent) == indent && is_key(trimmed, key) {
            return Some(start + 1 + offset);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = "# top\nimage:\n  repository: a/b\n  # the digest\n  digest: \"\"\n  nested:\n    digest: keep\nother:\n  digest: keep\n";

    #[test]
    fn pins_keep_comments_and_touch_only_their_lines() {
        let pinned = pin_values(
            VALUES,
            &[
                ("image", "repository", "r/c"),
                ("image", "digest", "sha256:ab"),
            ],
        )
        .unwrap();
        assert_eq!(
            pinned,
            "# top\nimage:\n  repository: \"r/c\"\n  # the digest\n  digest: \"sha256:ab\"\n  nested:\n    digest: keep\nother:\n  digest: keep\n"
        );
    }

    #[test]
    fn missing_keys_are_named() {
        let error = pin_values(VALUES, &[("image", "tag", "x")])
            .unwrap_err()
            .to_string();
        assert_eq!(error, "values.yaml has no image.tag to pin");
        let error = pin_values(VALUES, &[("metrics", "digest", "x")])
            .unwrap_err()
            .to_string();
        assert_eq!(error, "values.yaml has no metrics.digest to pin");
    }

    #[test]
    fn images_are_pinned_by_repository_and_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = pin_image(
            VALUES,
            "image",
            &format!("127.0.0.1:5000/x/oras-controller@{digest}"),
        )
        .unwrap();
        let parsed: Value = serde_yaml::from_str(&pinned).unwrap();
        assert_eq!(
            parsed["image"]["repository"],
            Value::from("127.0.0.1:5000/x/oras-controller")
        );
        assert_eq!(parsed["image"]["digest"], Value::from(digest.as_str()));
        for bad in [
            "ghcr.io/x/c:0.1.0",
            "ghcr.io/x/c@sha256:abc",
            "c@sha256:AAAA",
        ] {
            let error = pin_image(VALUES, "image", bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }

    #[test]
    fn a_value_that_would_change_the_structure_is_quoted() {
        let pinned = pin_values(VALUES, &[("image", "repository", "x: y # z")]).unwrap();
        let parsed: Value = serde_yaml::from_str(&pinned).unwrap();
        assert_eq!(parsed["image"]["repository"], Value::from("x: y # z"));
    }
}
