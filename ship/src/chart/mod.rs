//! A Helm chart as Helm stores it in an OCI registry, so that `helm install oci://...`
//! takes it: config `application/vnd.cncf.helm.config.v1+json` (Chart.yaml as JSON),
//! one layer `application/vnd.cncf.helm.chart.content.v1.tar+gzip` (the packaged
//! chart, every file under `NAME/`), tagged with the chart version.

pub mod push;
pub mod values;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::archive::{self, Entry};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const VALUES_FILE: &str = "values.yaml";

/// A chart directory, read.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Chart.yaml as JSON: what Helm puts in the config blob.
    pub metadata: Value,
    pub name: String,
    pub version: String,
    /// Every file, by its path relative to the chart directory, sorted.
    files: Vec<(String, Vec<u8>)>,
}

impl Chart {
    pub fn load(dir: &Path) -> Result<Self> {
        let chart_yaml = dir.join("Chart.yaml");
        let text = std::fs::read_to_string(&chart_yaml)
            .with_context(|| format!("cannot read {}", chart_yaml.display()))?;
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not YAML", chart_yaml.display()))?;
        let metadata = serde_json::to_value(yaml)
            .with_context(|| format!("{} cannot be expressed as JSON", chart_yaml.display()))?;
        let field = |name: &str| {
            metadata[name]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .with_context(|| format!("{} has no {name}", chart_yaml.display()))
        };
        let (name, version) = (field("name")?, field("version")?);
        if dir.join(".helmignore").exists() {
            bail!(
                "{}: .helmignore is not supported: every file of the chart directory is packaged",
                dir.display()
            );
        }
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files)?;
        files.sort();
        Ok(Self {
            metadata,
            name,
            version,
            files,
        })
    }

    /// The text of `values.yaml` (empty when the chart has none).
    pub fn values(&self) -> Result<String> {
        let bytes = self
            .files
            .iter()
            .find(|(path, _)| path == VALUES_FILE)
            .map(|(_, data)| data.clone())
            .unwrap_or_default();
        String::from_utf8(bytes).context("values.yaml is not UTF-8")
    }

    /// Replace `values.yaml`.
    pub fn set_values(&mut self, text: String) {
        self.files.retain(|(path, _)| path != VALUES_FILE);
        self.files
            .push((VALUES_FILE.to_string(), text.into_bytes()));
        self.files.sort();
    }

    /// `NAME-VERSION.tgz` as `helm package` lays it out: Chart.yaml first, then every
    /// other file in path order, all under `NAME/`, mode 0644, stamped `mtime`.
    pub fn package(&self, mtime: u64) -> Result<Vec<u8>> {
        let mut ordered: Vec<&(String, Vec<u8>)> = self.files.iter().collect();
        ordered.sort_by_key(|(path, _)| (path != "Chart.yaml", path.clone()));
        let entries: Vec<Entry> = ordered
            .into_iter()
            .map(|(path, data)| Entry::File {
                path: format!("{}/{path}", self.name),
                mode: 0o644,
                data: data.clone(),
            })
            .collect();
        archive::gzip(&archive::tar(&entries, mtime)?)
    }

    /// The archive's file name, as `helm package` names it.
    pub fn archive_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

fn collect_files(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    paths.sort();
    for path in paths {
        let kind = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .file_type();
        if kind.is_dir() {
            collect_files(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                // `path` was listed under `root`.
                .unwrap_or(&path)
                .to_str()
                .with_context(|| format!("{} is not a UTF-8 path", path.display()))?
                .to_string();
            let data =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.push((relative, data));
        } else {
            bail!(
                "{} is neither a file nor a directory: charts hold only files",
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn chart_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"1.2.3\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("values.yaml"), "a: 1\n").unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();
        dir
    }

    fn entries(tgz: &[u8]) -> Vec<(String, u32, String)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                let path = entry.path().unwrap().display().to_string();
                (path, entry.header().mode().unwrap(), text)
            })
            .collect()
    }

    #[test]
    fn a_chart_packages_under_its_name_with_chart_yaml_first() {
        let dir = chart_dir();
        let mut chart = Chart::load(dir.path()).unwrap();
        assert_eq!(
            (chart.name.as_str(), chart.version.as_str()),
            ("demo", "1.2.3")
        );
        assert_eq!(chart.metadata["appVersion"], "1.2.3");
        assert_eq!(chart.archive_name(), "demo-1.2.3.tgz");
        chart.set_values("a: 2\n".into());
        let tgz = chart.package(7).unwrap();
        assert_eq!(tgz, chart.package(7).unwrap(), "reproducible");
        let paths: Vec<(String, u32)> = entries(&tgz).into_iter().map(|(p, m, _)| (p, m)).collect();
        assert_eq!(
            paths,
            [
                ("demo/Chart.yaml".to_string(), 0o644),
                ("demo/templates/cm.yaml".to_string(), 0o644),
                ("demo/values.yaml".to_string(), 0o644),
            ]
        );
        assert_eq!(entries(&tgz)[2].2, "a: 2\n");
    }

    #[test]
    fn what_helm_would_package_differently_is_refused() {
        let dir = chart_dir();
        std::fs::write(dir.path().join(".helmignore"), "*.bak\n").unwrap();
        let error = Chart::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains(".helmignore is not supported"), "{error}");

        let dir = chart_dir();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            "apiVersion: v2\nname: demo\n",
        )
        .unwrap();
        let error = Chart::load(dir.path()).unwrap_err().to_string();
        assert!(error.ends_with("Chart.yaml has no version"), "{error}");
    }
}
