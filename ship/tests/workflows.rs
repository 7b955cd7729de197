//! `make lint-workflows` (part of `make test`) passes the project's GitHub workflows and
//! fails on the mistakes it is there to catch, so a broken workflow fails here rather
//! than on GitHub.

use std::path::Path;
use std::process::{Command, Output};

use oras_e2e::workspace;

fn lint(workflows: &Path) -> Output {
    Command::new("make")
        .current_dir(workspace::root())
        .args(["-s", "--no-print-directory", "lint-workflows"])
        .arg(format!("WORKFLOWS={}", workflows.display()))
        .output()
        .unwrap()
}

fn lint_with(name: &str, edit: impl Fn(&str) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let workflows = workspace::root().join(".github/workflows");
    for entry in std::fs::read_dir(&workflows).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = if path.file_name().unwrap() == name {
            let edited = edit(&text);
            assert_ne!(edited, text, "the edit of {name} changed nothing");
            edited
        } else {
            text
        };
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let output = lint(dir.path());
    assert!(!output.status.success(), "the lint passed a broken {name}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_project_workflows_pass_the_lint() {
    let output = lint(&workspace::root().join(".github/workflows"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_lint_fails_on_broken_or_unsafe_workflows() {
    // actionlint: an expression that does not exist.
    let report = lint_with("ci.yml", |text| {
        text.replace("ci-${{ github.ref }}", "ci-${{ github.reff }}")
    });
    assert!(report.contains("reff"), "{report}");
    // zizmor: a pull request's title expanded into a script (template injection), and
    // an action pinned by tag instead of commit.
    let report = lint_with("ci.yml", |text| {
        text.replace(
            "run: bash .ci/run",
            "run: echo \"${{ github.event.pull_request.title }}\" && bash .ci/run",
        )
    });
    assert!(report.contains("template-injection"), "{report}");
    let report = lint_with("ci.yml", |text| {
        text.replace(
            "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0",
            "actions/checkout@v5",
        )
    });
    assert!(report.contains("unpinned-uses"), "{report}");
}
