//! An application whose image has symlinks where its inputs go: through the policy and
//! the local pod runner, the launcher replaces the ones an input names and writes
//! nothing through them.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{job, local, show};
use oras_e2e::pod::pod_of;
use oras_e2e::runner::Phase;

#[test]
fn an_image_whose_input_path_holds_symlinks_gets_its_inputs_and_nothing_lands_outside() {
    let local = local();
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("ok")).unwrap();
    fs::write(src.path().join("ok/nested.txt"), "the input\n").unwrap();
    fs::write(src.path().join("notes.txt"), "notes\n").unwrap();
    local
        .push(
            "symlinks/input:v1",
            &["ok/nested.txt", "notes.txt"],
            src.path(),
        )
        .unwrap();
    let object = job(
        "image-symlinks",
        &[
            ("input-uri", "symlinks/input:v1"),
            ("input-path", "/tmp/work/data"),
        ],
        "cat data/ok/nested.txt data/notes.txt data/mine/own.txt",
    );
    let admitted = local.admit(&object).unwrap();
    let pod = pod_of(&admitted.object).unwrap();
    let root = local.pod_root(&pod.name);

    // What the image has at its working directory (/tmp/work): symlinks out of the
    // input path at both names the input brings, and one of its own inside it. The
    // escaping ones are relative, so they lead out whether or not the runner gives the
    // container a private /tmp (then `elsewhere` is its tmp/elsewhere, else beside workdir).
    let app = root.join("containers/app");
    let data = app.join("workdir/data");
    fs::create_dir_all(data.join("real")).unwrap();
    fs::write(data.join("real/own.txt"), "the image's\n").unwrap();
    symlink("../../elsewhere", data.join("ok")).unwrap();
    symlink("../../elsewhere/notes.txt", data.join("notes.txt")).unwrap();
    symlink("real", data.join("mine")).unwrap();
    let outside = [app.join("tmp/elsewhere"), app.join("elsewhere")];
    for dir in &outside {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("notes.txt"), "kept\n").unwrap();
    }

    let report = local.runner.run(&pod, &root).unwrap();
    show(&report);
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    let log = report.container("app").unwrap().log();
    assert!(log.contains("the input\nnotes\nthe image's\n"), "{log}");
    assert!(log.contains("replacing"), "{log}");
    for dir in &outside {
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["notes.txt"], "{}", dir.display());
        assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "kept\n");
    }
    assert!(fs::symlink_metadata(data.join("ok")).unwrap().is_dir());
    assert_eq!(fs::read_link(data.join("mine")).unwrap(), Path::new("real"));
}
