//! Whole flows: example Jobs through the compiled policy, their pods run by the local
//! runner the way the kubelet runs them, against a real registry on 127.0.0.1.
//! Needs `make policy.wasm`, `cargo build -p oras-agent` and Debian's docker-registry.

mod common;

use common::{example, local, tree};
use oras_e2e::runner::Phase;
use oras_testkit::{ContainerImage, OrasPy};
use serde_json::json;

#[test]
fn two_step_workflow_end_to_end() {
    let local = local();
    let step1 = common::start_example_workflow(&local);
    let report = &step1.report;
    let launcher = report.container("simulate").unwrap();
    assert_eq!(launcher.exit_code, Some(0));
    assert!(
        launcher.log().contains("simulation done"),
        "{}",
        launcher.log()
    );
    let sidecar = report.container("oras").unwrap();
    assert!(sidecar.log().contains("pushed"), "{}", sidecar.log());
    let written = report.workdir("simulate").join("results");
    let log = std::fs::read_to_string(written.join("simulate.log")).unwrap();
    assert!(log.contains("simulated seed 3"), "{log}");
    println!("{}", report.summary());

    let step2 = local
        .run(&example("examples/workflow/step2-summarize.yaml"))
        .unwrap();
    let report = &step2.report;
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    println!("{}", report.summary());

    // Step 2's summary, pulled back with the agent.
    let pulled = tempfile::tempdir().unwrap();
    local
        .pull("workflow/summarize:summary", pulled.path())
        .unwrap();
    let summary = std::fs::read_to_string(pulled.path().join("summary.txt")).unwrap();
    assert_eq!(
        summary,
        "runs: 3\nthreshold: 20\nabove threshold: 2\nsimulation log lines: 4\n"
    );

    // Step 1's output, pulled by the ORAS Python SDK, is what step 1 wrote.
    let oras_py = OrasPy::shared().expect("the ORAS Python SDK");
    let by_python = tempfile::tempdir().unwrap();
    oras_py
        .pull_plain_http(
            &local.registry.reference("workflow/simulate:results"),
            by_python.path(),
        )
        .unwrap();
    assert_eq!(tree(&by_python.path().join("results")), tree(&written));
}

#[test]
fn hello_world_job_of_the_user_guide_pushes_blueberry_as_pancakes() {
    let local = local();
    // The guide's Job (echo blueberry, output-pipe and output-path pancakes.txt).
    let job = example("examples/requests/breakfast-job-output-pipe.json");
    let step = local.run(&job).unwrap();
    let report = &step.report;
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    assert!(
        report
            .container("breakfast")
            .unwrap()
            .log()
            .contains("blueberry")
    );
    let pulled = tempfile::tempdir().unwrap();
    local
        .pull("dinosaur/hello-world:pancakes", pulled.path())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("pancakes.txt")).unwrap(),
        "blueberry\n"
    );
    println!("{}", report.summary());
}

#[test]
fn multiple_inputs_pod_of_the_user_guide_sees_both_inputs_in_one_place() {
    let local = local();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("one.txt"), "the first input\n").unwrap();
    std::fs::write(files.path().join("two.txt"), "the second input\n").unwrap();
    local
        .push("dinosaur/hello-world:one", &["one.txt"], files.path())
        .unwrap();
    local
        .push("dinosaur/hello-world:two", &["two.txt"], files.path())
        .unwrap();
    // The guide's hello-world-3 (input-uri_1, input-uri_2), listing its input path.
    let pod = example("examples/requests/multiple-inputs-pod.json");
    let step = local.run(&pod).unwrap();
    let report = &step.report;
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    let log = report.container("hello-world").unwrap().log();
    assert!(
        log.contains("one.txt\ntwo.txt\nthe first input\nthe second input\n"),
        "{log}"
    );
    // The inputs went to the container's own /tmp, not the host's.
    let private = report
        .root
        .join("containers/hello-world/tmp/inputs/one.txt");
    if local.runner.config().isolation == oras_e2e::isolation::Isolation::MountNamespace {
        assert!(private.is_file(), "{} is missing", private.display());
    }
}

#[test]
fn cronjob_pod_template_runs_end_to_end() {
    let local = local();
    // The fixture's CronJob runs `python3 analyze.py --out summary.csv` on its input.
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("analyze.py"),
        "import sys\nopen(sys.argv[2], 'w').write('metric,value\\nruns,3\\n')\nprint('analysed')\n",
    )
    .unwrap();
    local
        .push("experiments/raw:latest", &["analyze.py"], files.path())
        .unwrap();
    let cronjob = example("examples/requests/nightly-cronjob.json");
    let step = local.run(&cronjob).unwrap();
    let report = &step.report;
    common::show(report);
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    let pulled = tempfile::tempdir().unwrap();
    local
        .pull("experiments/summary:nightly", pulled.path())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("summary.csv")).unwrap(),
        "metric,value\nruns,3\n"
    );
}

#[test]
fn a_job_without_command_runs_what_its_image_would_have_run() {
    let local = local();
    // The image's ENTRYPOINT and CMD exist on this machine, where the runner runs them.
    let script = "echo \"image says $GREETING\" > greeting.txt; echo ran the image command";
    local
        .registry
        .push_image(
            "tools/greeter",
            "1",
            &ContainerImage::new(&["/bin/sh", "-c"], &[script]),
        )
        .unwrap();
    let mut job = common::job(
        "greeter",
        &[
            ("output-uri", "runs/greeting:1"),
            ("output-path", "greeting.txt"),
        ],
        "not used",
    );
    let container = &mut job["spec"]["template"]["spec"]["containers"][0];
    container.as_object_mut().unwrap().remove("command");
    container["image"] = json!(local.registry.reference("tools/greeter:1"));
    container["env"] = json!([{"name": "GREETING", "value": "hello"}]);

    let step = local.run(&job).unwrap();
    let report = &step.report;
    common::show(report);
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    // The launcher runs the image's argv, `$` escaped for the kubelet's expansion.
    let args = step.admitted.object["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .clone();
    let separator = args.iter().position(|a| a == "--").unwrap();
    assert_eq!(
        args[separator + 1..],
        [
            json!("/bin/sh"),
            json!("-c"),
            json!(script.replace('$', "$$"))
        ]
    );
    assert!(
        report
            .container("app")
            .unwrap()
            .log()
            .contains("ran the image command"),
        "{}",
        report.container("app").unwrap().log()
    );
    let pulled = tempfile::tempdir().unwrap();
    local.pull("runs/greeting:1", pulled.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("greeting.txt")).unwrap(),
        "image says hello\n"
    );
}
