//! The admission request fixtures under `examples/requests/`: `<case>.json` is an
//! AdmissionReview as `kwctl run -r` takes it, and `expected/<case>.json` holds the
//! policy settings of the case and the policy's expected answer.
//!
//! Cases whose launcher has no `command` need their image's ENTRYPOINT/CMD:
//! `images/images.json` lists those images, and [`FixtureImages`] pushes them as real
//! images into a local registry that stands in for their registries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use oras_testkit::{ContainerImage, Registry};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::oci_host::{ImageRegistry, Sources};

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

/// One image of `images/images.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureImage {
    /// Fully qualified, as the policy asks for it.
    image: String,
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    cmd: Vec<String>,
}

/// The images the fixtures name, pushed into a registry on 127.0.0.1 that serves every
/// registry host they are on; the registry stops when this is dropped.
pub struct FixtureImages {
    pub registry: Registry,
    /// The OCI host capability, answering from [`FixtureImages::registry`].
    pub lookups: Arc<ImageRegistry>,
}

impl FixtureImages {
    /// Starts the registry and pushes the images listed in `dir/images/images.json`.
    pub fn start(dir: &Path) -> Result<Self> {
        let path = dir.join("images").join("images.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let images: Vec<FixtureImage> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a list of images", path.display()))?;
        let registry = Registry::start().context("cannot start the fixtures' registry")?;
        let mut sources = Sources::insecure(&[&registry.host()]);
        for fixture in &images {
            let (host, repository, tag) = split_image(&fixture.image).with_context(|| {
                format!(
                    "{}: {:?} is not host/repository:tag",
                    path.display(),
                    fixture.image
                )
            })?;
            let image = ContainerImage::new(&as_strs(&fixture.entrypoint), &as_strs(&fixture.cmd));
            registry
                .push_image(repository, tag, &image)
                .with_context(|| format!("cannot push {}", fixture.image))?;
            sources.mirrors.insert(host.to_string(), registry.host());
        }
        let lookups = Arc::new(ImageRegistry::new(sources)?);
        Ok(Self { registry, lookups })
    }
}

fn as_strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

/// `host/repository:tag` in its three parts.
fn split_image(image: &str) -> Option<(&str, &str, &str)> {
    let (host, rest) = image.split_once('/')?;
    let (repository, tag) = rest.rsplit_once(':')?;
    (!repository.contains(':')).then_some((host, repository, tag))
}
