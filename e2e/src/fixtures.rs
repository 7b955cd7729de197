//! The admission request fixtures under `examples/requests/`: `<case>.json` is an
//! AdmissionReview as `kwctl run -r` takes it, and `expected/<case>.json` holds the
//! policy settings of the case and the policy's expected answer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub struct Case {
    pub name: String,
    pub review: Value,
    pub settings: Value,
    pub expected_response: Value,
    pub expected_path: PathBuf,
}

impl Case {
    /// The AdmissionReview's `request`.
    pub fn request(&self) -> &Value {
        &self.review["request"]
    }

    /// Writes `response` as the expected answer (used to refresh golden files).
    pub fn store_expected(&self, response: &Value) -> Result<()> {
        let document = json!({"settings": self.settings, "response": response});
        let text = serde_json::to_string_pretty(&document)? + "\n";
        std::fs::write(&self.expected_path, text)
            .with_context(|| format!("cannot write {}", self.expected_path.display()))
    }
}

/// Every case in `dir`, sorted by name.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("fixture names are UTF-8")?
            .to_string();
        let review = read_json(&path)?;
        if review["request"].is_null() {
            bail!(
                "{} is not an AdmissionReview: it has no request",
                path.display()
            );
        }
        let expected_path = dir.join("expected").join(format!("{name}.json"));
        let expected = read_json(&expected_path)?;
        cases.push(Case {
            name,
            review,
            settings: expected["settings"].clone(),
            expected_response: expected["response"].clone(),
            expected_path,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cases)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
