//! Pulling into a directory that already holds symlinks (the user's, or the application
//! image's around the input path): nothing is ever written through one that leads
//! outside the target; one that stays inside is followed for a file layer's parents.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Stdio;

use support::registry::TestRegistry;
use support::*;

/// Push the files at `titles` (relative to `src`) as `reference`; each becomes a file
/// layer titled with its relative path.
fn push_files(reference: &str, src: &Path, titles: &[&str]) {
    let mut args = vec!["push", "--plain-http", reference];
    args.extend_from_slice(titles);
    agent_ok(&args, src);
}

fn pull(reference: &str, target: &Path) -> (bool, String) {
    let output = run_agent(
        &[
            "pull",
            "--plain-http",
            reference,
            "-o",
            target.to_str().unwrap(),
        ],
        target.parent().unwrap(),
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_title_through_a_symlink_leading_outside_is_refused_and_nothing_is_written() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("a.txt"), b"first layer\n");
    write(&src.join("ok/nested.txt"), b"would escape\n");
    let reference = registry.reference("hostile/through-link:v1");
    push_files(&reference, &src, &["a.txt", "ok/nested.txt"]);

    let outside = work.path().join("elsewhere");
    fs::create_dir_all(&outside).unwrap();
    for (case, link) in [
        ("absolute", outside.clone()),
        ("relative", "../../elsewhere".into()),
    ] {
        let target = work.path().join(case).join("out");
        fs::create_dir_all(&target).unwrap();
        symlink(&link, target.join("ok")).unwrap();
        let before = snapshot(&target);

        let (succeeded, stderr) = pull(&reference, &target);
        assert!(
            !succeeded,
            "{case}: the pull went through the symlink\n{stderr}"
        );
        assert!(stderr.contains("ok/nested.txt"), "{case}: {stderr}");
        assert!(stderr.contains("leads outside"), "{case}: {stderr}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{case}");
        // Checked before any blob was fetched: not even the first layer was written.
        assert_eq!(snapshot(&target), before, "{case}");
    }
}

#[test]
fn a_symlink_staying_inside_the_target_is_followed_and_a_title_that_is_a_symlink_is_replaced() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("inside/nested.txt"), b"through an inner link\n");
    write(&src.join("ok"), b"a file named ok\n");
    let through = registry.reference("hostile/inner-link:v1");
    push_files(&through, &src, &["inside/nested.txt"]);
    let replacing = registry.reference("hostile/replace-link:v1");
    push_files(&replacing, &src, &["ok"]);

    let outside = work.path().join("elsewhere");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"kept\n").unwrap();
    let target = work.path().join("out");
    fs::create_dir_all(target.join("real/dir")).unwrap();
    symlink("real/dir", target.join("inside")).unwrap();
    symlink(outside.join("victim"), target.join("ok")).unwrap();

    let (succeeded, stderr) = pull(&through, &target);
    assert!(succeeded, "{stderr}");
    assert_eq!(
        fs::read(target.join("real/dir/nested.txt")).unwrap(),
        b"through an inner link\n"
    );
    assert!(
        fs::symlink_metadata(target.join("inside"))
            .unwrap()
            .is_symlink()
    );

    let (succeeded, stderr) = pull(&replacing, &target);
    assert!(succeeded, "{stderr}");
    let placed = fs::symlink_metadata(target.join("ok")).unwrap();
    assert!(placed.is_file(), "the symlink was not replaced by the file");
    assert_eq!(fs::read(target.join("ok")).unwrap(), b"a file named ok\n");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"kept\n");

    // An absolute symlink is refused even when it names a place inside the target.
    symlink(target.join("real"), target.join("absolute")).unwrap();
    write(&src.join("absolute/x.txt"), b"x\n");
    let absolute = registry.reference("hostile/absolute-inside:v1");
    push_files(&absolute, &src, &["absolute/x.txt"]);
    let (succeeded, stderr) = pull(&absolute, &target);
    assert!(!succeeded, "{stderr}");
    assert!(stderr.contains("absolute/x.txt"), "{stderr}");
    assert!(!target.join("real/x.txt").exists());
}

#[test]
fn an_archive_replaces_a_symlink_at_its_name_and_is_never_extracted_through_it() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("ok/nested.txt"), b"in the archive\n");
    write(&src.join("ok/deeper/more.txt"), b"more\n");
    let reference = registry.reference("hostile/archive-at-link:v1");
    push_files(&reference, &src, &["ok"]);

    let outside = work.path().join("elsewhere");
    fs::create_dir_all(&outside).unwrap();
    let target = work.path().join("out");
    fs::create_dir_all(&target).unwrap();
    symlink(&outside, target.join("ok")).unwrap();

    let (succeeded, stderr) = pull(&reference, &target);
    assert!(succeeded, "{stderr}");
    assert!(stderr.contains("replacing"), "{stderr}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(fs::symlink_metadata(target.join("ok")).unwrap().is_dir());
    assert_eq!(snapshot(&target.join("ok")), snapshot(&src.join("ok")));
}

#[test]
fn init_refuses_an_input_through_a_symlink_left_in_the_share() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("ok/nested.txt"), b"would escape\n");
    let reference = registry.reference("hostile/init:v1");
    push_files(&reference, &src, &["ok/nested.txt"]);

    let outside = work.path().join("elsewhere");
    fs::create_dir_all(&outside).unwrap();
    let share = work.path().join("share");
    fs::create_dir_all(share.join("inputs/1")).unwrap();
    symlink(&outside, share.join("inputs/1/ok")).unwrap();
    let output = run_agent(
        &[
            "init",
            "--share",
            share.to_str().unwrap(),
            "--input",
            &reference,
            "--plain-http",
        ],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("ok/nested.txt"), "{stderr}");
    assert!(stderr.contains("input 1"), "{stderr}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn the_launcher_replaces_symlinks_of_the_input_path_and_never_writes_through_them() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("ok/nested.txt"), b"the input\n");
    write(&src.join("notes.txt"), b"notes\n");
    let reference = registry.reference("hostile/launch:v1");
    push_files(&reference, &src, &["ok/nested.txt", "notes.txt"]);
    let share = work.path().join("share");
    agent_ok(
        &[
            "init",
            "--share",
            share.to_str().unwrap(),
            "--input",
            &reference,
            "--plain-http",
        ],
        work.path(),
    );

    // The application's image: its input path holds a symlink out of it for each name
    // an input brings, and one that stays inside.
    let outside = work.path().join("elsewhere");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("notes.txt"), b"kept\n").unwrap();
    let app = work.path().join("app");
    fs::create_dir_all(app.join("data/real")).unwrap();
    symlink(&outside, app.join("data/ok")).unwrap();
    symlink(outside.join("notes.txt"), app.join("data/notes.txt")).unwrap();
    symlink("real", app.join("data/mine")).unwrap();

    let launched = support::agent()
        .args(["launch", "--share", share.to_str().unwrap()])
        .args(["--input-path", "data", "--"])
        .args(["sh", "-c", "cat data/ok/nested.txt data/notes.txt"])
        .current_dir(&app)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&launched.stderr);
    assert!(launched.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&launched.stdout),
        "the input\nnotes\n"
    );
    assert!(stderr.contains("replacing"), "{stderr}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(fs::read(outside.join("notes.txt")).unwrap(), b"kept\n");
    assert!(
        !fs::symlink_metadata(app.join("data/ok"))
            .unwrap()
            .is_symlink()
    );
    // The image's own symlink that no input names is left alone.
    assert_eq!(
        fs::read_link(app.join("data/mine")).unwrap(),
        Path::new("real")
    );
}
