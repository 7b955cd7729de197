//! The mutation, rule by rule, on the host build.

mod common;

use common::{OUTPUT, P, annotations};
use oras_contract::provenance::command_digest;
use oras_policy::evaluate::{AdmissionRequest, Outcome, evaluate};
use oras_policy::image::ImageEntrypoint;
use oras_policy::settings::Settings;
use serde_json::{Value, json};

fn request(kind: &str, operation: &str, object: Value) -> AdmissionRequest {
    serde_json::from_value(json!({
        "uid": "1",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "namespace": "team",
        "operation": operation,
        "object": object,
    }))
    .unwrap()
}

fn pod_spec() -> Value {
    json!({
        "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c"], "args": ["echo hi > out.txt"]}],
        "restartPolicy": "Never",
    })
}

fn pod(pairs: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations(pairs)}, "spec": pod_spec()})
}

/// Every container here has a command: the registry is never asked.
fn no_lookup(image: &str) -> Result<ImageEntrypoint, String> {
    panic!("unexpected image lookup for {image}")
}

fn run(kind: &str, object: Value) -> Outcome {
    evaluate(
        request(kind, "CREATE", object),
        &Settings::default(),
        &no_lookup,
    )
}

fn mutated(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Mutate { object, .. } => object,
        other => panic!("expected a mutation, got {other:?}"),
    }
}

fn rejection(outcome: Outcome) -> String {
    match outcome {
        Outcome::Reject(message) => message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn container<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {list}"))
}

#[test]
fn a_pod_with_an_output_gets_share_init_sidecar_and_launcher() {
    let pod = mutated(run("Pod", pod(OUTPUT)));
    let spec = &pod["spec"];
    assert_eq!(
        spec["volumes"],
        json!([{"name": "oras-share", "emptyDir": {}}])
    );
    let inits = spec["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 2);
    assert_eq!(inits[0]["name"], "oras-init");
    assert_eq!(inits[1]["name"], "oras");
    assert_eq!(inits[1]["restartPolicy"], "Always");
    assert_eq!(
        inits[1]["args"],
        json!([
            "sidecar",
            "--share",
            "/mnt/oras",
            "--output",
            "oras.team.svc.cluster.local:5000/dino/out:v1",
            "--image",
            "busybox",
            "--command-digest",
            command_digest(&["sh".into(), "-c".into(), "echo hi > out.txt".into()]),
            "--plain-http"
        ])
    );
    let app = &spec["containers"][0];
    assert_eq!(app["command"], json!(["/mnt/oras/bin/oras-agent"]));
    assert_eq!(
        app["args"],
        json!([
            "launch",
            "--share",
            "/mnt/oras",
            "--output-path",
            "out.txt",
            "--wait-push",
            "--",
            "sh",
            "-c",
            "echo hi > out.txt"
        ])
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "oras-share", "mountPath": "/mnt/oras"}])
    );
    assert_eq!(
        pod["metadata"]["annotations"][format!("{P}injected")],
        "true"
    );
}

#[test]
fn memoize_gives_init_the_key_the_sidecar_records() {
    let mut pairs = OUTPUT.to_vec();
    pairs.push(("memoize", "true"));
    let pod = mutated(run("Pod", pod(&pairs)));
    let inits = pod["spec"]["initContainers"].as_array().unwrap();
    let digest = command_digest(&["sh".into(), "-c".into(), "echo hi > out.txt".into()]);
    let init_args = inits[0]["args"].as_array().unwrap();
    let memoize = init_args.iter().position(|a| a == "--memoize").unwrap();
    assert_eq!(
        init_args[memoize..memoize + 7],
        [
            json!("--memoize"),
            json!("--output"),
            json!("oras.team.svc.cluster.local:5000/dino/out:v1"),
            json!("--image"),
            json!("busybox"),
            json!("--command-digest"),
            json!(digest)
        ]
    );
    assert!(
        inits[1]["args"]
            .as_array()
            .unwrap()
            .contains(&json!(digest))
    );
    // The application container gets nothing of it.
    assert!(pod["spec"]["containers"][0].get("env").is_none());
}

#[test]
fn without_an_output_there_is_no_sidecar_and_no_push_wait() {
    let pod = mutated(run("Pod", pod(&[("input-uri", "dino/in:v1")])));
    let inits = pod["spec"]["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 1);
    assert_eq!(
        inits[0]["args"],
        json!([
            "init",
            "--share",
            "/mnt/oras",
            "--input",
            "oras.team.svc.cluster.local:5000/dino/in:v1",
            "--plain-http"
        ])
    );
    let args = pod["spec"]["containers"][0]["args"].as_array().unwrap();
    assert!(!args.contains(&json!("--wait-push")));
}

#[test]
fn the_original_command_and_args_stay_separate_argv_items() {
    let mut object = pod(OUTPUT);
    object["spec"]["containers"][0]["command"] = json!(["python3", "-c"]);
    object["spec"]["containers"][0]["args"] = json!(["print('a b'); import sys", "--flag=\"x y\""]);
    let pod = mutated(run("Pod", object));
    let args = pod["spec"]["containers"][0]["args"].as_array().unwrap();
    let after = args.iter().position(|a| a == "--").unwrap() + 1;
    assert_eq!(
        args[after..],
        [
            json!("python3"),
            json!("-c"),
            json!("print('a b'); import sys"),
            json!("--flag=\"x y\"")
        ]
    );
}

#[test]
fn every_path_annotation_reaches_the_launcher() {
    let pod = mutated(run(
        "Pod",
        pod(&[
            ("input-uri", "a/in"),
            ("input-path", "/data/in"),
            ("output-uri", "a/out"),
            ("output-path", "/data/out"),
            ("output-pipe", "/data/log.txt"),
            ("push-on-failure", "true"),
            ("debug", "true"),
        ]),
    ));
    let args = &pod["spec"]["containers"][0]["args"];
    assert_eq!(
        args.as_array().unwrap()[..14],
        json!([
            "launch",
            "--share",
            "/mnt/oras",
            "--input-path",
            "/data/in",
            "--output-path",
            "/data/out",
            "--output-pipe",
            "/data/log.txt",
            "--push-on-failure",
            "--wait-push",
            "--debug",
            "--",
            "sh"
        ])
        .as_array()
        .unwrap()[..]
    );
    let sidecar = container(&pod["spec"]["initContainers"], "oras");
    assert!(
        sidecar["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--push-on-failure"))
    );
    assert!(
        sidecar["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--debug"))
    );
}

#[test]
fn unpack_false_and_the_agent_image_annotation() {
    let pod = mutated(run(
        "Pod",
        pod(&[
            ("input-uri", "a/in"),
            ("unpack", "false"),
            ("oras-container", "my/agent:dev"),
        ]),
    ));
    let init = container(&pod["spec"]["initContainers"], "oras-init");
    assert!(
        init["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--no-unpack"))
    );
    assert_eq!(init["image"], "my/agent:dev");
}

#[test]
fn oras_env_reaches_the_agent_containers_only() {
    let pod = mutated(run(
        "Pod",
        pod(&[
            ("oras-env", "creds"),
            ("output-uri", "a/o"),
            ("output-path", "o"),
        ]),
    ));
    for name in ["oras-init", "oras"] {
        let agent = container(&pod["spec"]["initContainers"], name);
        // The cache's generated credentials first (optional), then oras-env: the last
        // source wins in Kubernetes, so an explicit oras-env overrides them.
        assert_eq!(
            agent["envFrom"],
            json!([
                {"secretRef": {"name": "oras-credentials", "optional": true}},
                {"secretRef": {"name": "creds"}}
            ]),
            "{name}"
        );
    }
    assert!(pod["spec"]["containers"][0].get("envFrom").is_none());
}

#[test]
fn the_caches_credentials_reach_the_agent_containers_only_and_optionally() {
    let pod = mutated(run(
        "Pod",
        pod(&[
            ("oras-cache", "results"),
            ("input-uri", "a/in:1"),
            ("output-uri", "a/o"),
            ("output-path", "o"),
        ]),
    ));
    for name in ["oras-init", "oras"] {
        let agent = container(&pod["spec"]["initContainers"], name);
        assert_eq!(
            agent["envFrom"],
            json!([{"secretRef": {"name": "results-credentials", "optional": true}}]),
            "{name}"
        );
    }
    assert!(pod["spec"]["containers"][0].get("envFrom").is_none());
}

#[test]
fn a_registry_annotation_never_gets_the_caches_credentials() {
    let pod = mutated(run(
        "Pod",
        pod(&[("registry", "ghcr.io"), ("input-uri", "a/in:1")]),
    ));
    let init = container(&pod["spec"]["initContainers"], "oras-init");
    assert!(init.get("envFrom").is_none(), "{init}");
}

#[test]
fn the_cache_name_and_registry_annotations_choose_the_registry() {
    let pod1 = mutated(run(
        "Pod",
        pod(&[("oras-cache", "orascache-sample"), ("input-uri", "a/in:1")]),
    ));
    let init = container(&pod1["spec"]["initContainers"], "oras-init");
    assert_eq!(
        init["args"][4],
        "orascache-sample.team.svc.cluster.local:5000/a/in:1"
    );
    let pod2 = mutated(run(
        "Pod",
        pod(&[("registry", "ghcr.io"), ("input-uri", "a/in:1")]),
    ));
    let init = container(&pod2["spec"]["initContainers"], "oras-init");
    assert_eq!(
        init["args"],
        json!(["init", "--share", "/mnt/oras", "--input", "ghcr.io/a/in:1"])
    );
}

#[test]
fn the_object_namespace_wins_over_the_request_namespace() {
    let mut object = pod(&[("input-uri", "a/in:1")]);
    object["metadata"]["namespace"] = json!("lab");
    let pod = mutated(run("Pod", object));
    let init = container(&pod["spec"]["initContainers"], "oras-init");
    assert_eq!(init["args"][4], "oras.lab.svc.cluster.local:5000/a/in:1");
}

#[test]
fn the_container_annotation_picks_the_launcher_and_leaves_the_others_alone() {
    let mut object = pod(&[("container", "launcher"), ("input-uri", "a/in")]);
    object["spec"]["containers"] = json!([
        {"name": "worker", "image": "w", "command": ["work"]},
        {"name": "launcher", "image": "l", "command": ["run"]},
    ]);
    let pod = mutated(run("Pod", object));
    assert_eq!(
        pod["spec"]["containers"][0],
        json!({"name": "worker", "image": "w", "command": ["work"]})
    );
    assert_eq!(
        pod["spec"]["containers"][1]["command"],
        json!(["/mnt/oras/bin/oras-agent"])
    );
}

#[test]
fn existing_init_containers_volumes_and_mounts_are_kept_and_ours_come_last() {
    let mut object = pod(OUTPUT);
    object["spec"]["initContainers"] =
        json!([{"name": "setup", "image": "s", "command": ["prep"]}]);
    object["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {"medium": "Memory"}}]);
    object["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    object["spec"]["unknownFutureField"] = json!({"kept": true});
    let pod = mutated(run("Pod", object));
    let names: Vec<_> = pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("setup"), json!("oras-init"), json!("oras")]);
    assert_eq!(pod["spec"]["volumes"][0]["name"], "data");
    assert_eq!(pod["spec"]["volumes"][1]["name"], "oras-share");
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"][0]["name"],
        "data"
    );
    assert_eq!(pod["spec"]["unknownFutureField"], json!({"kept": true}));
}

#[test]
fn nothing_but_the_documented_fields_changes() {
    let original = pod(OUTPUT);
    let pod = mutated(run("Pod", original.clone()));
    assert_eq!(pod["metadata"]["labels"], original["metadata"]["labels"]);
    for field in ["subdomain", "hostname", "restartPolicy"] {
        assert_eq!(pod["spec"][field], original["spec"][field], "{field}");
    }
    assert_eq!(pod["apiVersion"], original["apiVersion"]);
}

#[test]
fn every_kind_with_a_pod_template_is_mutated_there_and_marked() {
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec()});
    let cases = [
        (
            "Job",
            json!({"spec": {"template": template.clone()}}),
            "/spec/template",
        ),
        (
            "Deployment",
            json!({"spec": {"template": template.clone()}}),
            "/spec/template",
        ),
        (
            "StatefulSet",
            json!({"spec": {"template": template.clone()}}),
            "/spec/template",
        ),
        (
            "DaemonSet",
            json!({"spec": {"template": template.clone()}}),
            "/spec/template",
        ),
        (
            "ReplicaSet",
            json!({"spec": {"template": template.clone()}}),
            "/spec/template",
        ),
        (
            "ReplicationController",
            json!({"spec": {"template": template.clone()}}),
            "/spec/template",
        ),
        (
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": template.clone()}}}}),
            "/spec/jobTemplate/spec/template",
        ),
    ];
    for (kind, mut object, pointer) in cases {
        object["kind"] = json!(kind);
        object["metadata"] = json!({"name": "w", "annotations": annotations(OUTPUT)});
        let result = mutated(run(kind, object));
        let template = result.pointer(pointer).unwrap();
        assert_eq!(
            template["metadata"]["annotations"][format!("{P}injected")],
            "true",
            "{kind}"
        );
        assert_eq!(template["metadata"]["labels"]["app"], "x", "{kind}");
        assert_eq!(
            template["spec"]["initContainers"][0]["name"], "oras-init",
            "{kind}"
        );
        assert!(
            result["metadata"]["annotations"]
                .get(format!("{P}injected"))
                .is_none(),
            "{kind}: the workload itself is not marked"
        );
    }
}

#[test]
fn a_template_without_metadata_gets_the_marker() {
    let object = json!({"kind": "Job", "metadata": {"annotations": annotations(OUTPUT)}, "spec": {"template": {"spec": pod_spec()}}});
    let job = mutated(run("Job", object));
    assert_eq!(
        job["spec"]["template"]["metadata"],
        json!({"annotations": {format!("{P}injected"): "true"}})
    );
}

#[test]
fn mutating_twice_changes_nothing() {
    let once = mutated(run("Pod", pod(OUTPUT)));
    assert_eq!(run("Pod", once), Outcome::Accept);
    let job = json!({"kind": "Job", "metadata": {"annotations": annotations(OUTPUT)}, "spec": {"template": {"spec": pod_spec()}}});
    let once = mutated(run("Job", job));
    assert_eq!(run("Job", once), Outcome::Accept);
}

#[test]
fn a_pod_with_the_share_volume_is_left_alone() {
    let mut object = pod(OUTPUT);
    object["spec"]["volumes"] = json!([{"name": "oras-share", "emptyDir": {}}]);
    assert_eq!(run("Pod", object), Outcome::Accept);
}

#[test]
fn annotations_that_ask_for_no_input_and_no_output_change_nothing() {
    let templated = pod(&[
        ("input-uri", "NA"),
        ("output-uri", "NA"),
        ("output-path", "NA"),
        ("debug", "true"),
    ]);
    assert_eq!(run("Pod", templated), Outcome::Accept);
    assert_eq!(run("Pod", pod(&[("oras-cache", "cache")])), Outcome::Accept);
}

#[test]
fn pass_through_cases() {
    assert_eq!(
        run(
            "Pod",
            json!({"metadata": {"name": "x"}, "spec": pod_spec()})
        ),
        Outcome::Accept
    );
    assert_eq!(
        run(
            "ConfigMap",
            json!({"metadata": {"annotations": annotations(OUTPUT)}})
        ),
        Outcome::Accept
    );
    assert_eq!(run("Pod", Value::Null), Outcome::Accept);
    let delete = request("Pod", "DELETE", pod(OUTPUT));
    assert_eq!(
        evaluate(delete, &Settings::default(), &no_lookup),
        Outcome::Accept
    );
    let update = request("Pod", "UPDATE", pod(OUTPUT));
    assert_eq!(
        evaluate(update, &Settings::default(), &no_lookup),
        Outcome::Accept
    );
    let job = json!({"kind": "Job", "metadata": {"annotations": annotations(OUTPUT)}, "spec": {"template": {"spec": pod_spec()}}});
    assert!(matches!(
        evaluate(
            request("Job", "UPDATE", job),
            &Settings::default(),
            &no_lookup
        ),
        Outcome::Mutate { .. }
    ));
}

#[test]
fn the_ignored_script_annotations_become_warnings() {
    match run(
        "Pod",
        pod(&[("input-uri", "a/b"), ("entrypoint", "https://x/e.sh")]),
    ) {
        Outcome::Mutate { warnings, .. } => {
            assert_eq!(
                warnings,
                [format!(
                    "annotation {P}entrypoint is ignored: oras-operator no longer downloads scripts at pod start"
                )]
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejections_name_what_is_wrong() {
    let two = json!([{"name": "a", "image": "i", "command": ["x"]}, {"name": "b", "image": "i", "command": ["y"]}]);
    let with_containers = |pairs: &[(&str, &str)], containers: &Value| {
        let mut object = pod(pairs);
        object["spec"]["containers"] = containers.clone();
        object
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with_containers(&[("container", "c"), ("input-uri", "a/b")], &two),
            "annotation oras.converged-computing.github.io/container=\"c\" names no container of the pod; its containers are \"a\", \"b\"",
        ),
        (
            with_containers(&[("input-uri", "a/b")], &two),
            "the pod has 2 containers (\"a\", \"b\"): set annotation oras.converged-computing.github.io/container",
        ),
        (
            with_containers(&[("input-uri", "a/b")], &json!([])),
            "the pod has no containers",
        ),
        (
            with_containers(
                &[("input-uri", "a/b")],
                &json!([{"name": "oras-init", "image": "i", "command": ["x"]}]),
            ),
            "already has a container named \"oras-init\"",
        ),
        (
            with_containers(
                OUTPUT,
                &json!([{"name": "oras", "image": "i", "command": ["x"]}]),
            ),
            "already has a container named \"oras\"",
        ),
        (
            with_containers(
                &[("input-uri", "a/b")],
                &json!([{"name": "a", "image": "i", "command": ["x"], "volumeMounts": [{"name": "v", "mountPath": "/mnt/oras"}]}]),
            ),
            "already mounts something at /mnt/oras",
        ),
        (
            with_containers(
                &[("input-uri", "a/b")],
                &json!([{"name": "a", "image": "i", "command": "x"}]),
            ),
            "container \"a\" has a command that is not a list",
        ),
        (
            with_containers(
                &[("input-uri", "a/b")],
                &json!([{"name": "a", "image": "i", "command": ["x", 1]}]),
            ),
            "container \"a\" has a non-string item in command",
        ),
        (
            with_containers(&[("input-uri", "a/b")], &json!("nope")),
            "spec.containers must be a list",
        ),
        (
            pod(&[("input-uri", "a/b"), ("input-path", "/")]),
            "input-path=\"/\" would place inputs over the container's root",
        ),
        (
            pod(&[("output-uri", "a/b"), ("output-path", "/")]),
            "output-path=\"/\" would push the container's whole root",
        ),
        (
            with_containers(
                &[("input-uri", "a/b")],
                &json!([{"name": "a", "image": "i", "command": ["x"], "workingDir": "/"}]),
            ),
            "container \"a\" works in \"/\"",
        ),
    ];
    for (object, expected) in cases {
        let message = rejection(run("Pod", object));
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn an_output_pod_with_a_container_named_oras_init_only_conflicts_when_it_needs_it() {
    let mut object = pod(&[("input-uri", "a/b")]);
    object["spec"]["containers"] = json!([{"name": "oras", "image": "i", "command": ["x"]}]);
    assert!(matches!(run("Pod", object), Outcome::Mutate { .. }));
}

#[test]
fn a_workload_without_its_template_is_rejected_with_the_field_path() {
    let object = json!({"kind": "CronJob", "metadata": {"annotations": annotations(OUTPUT)}, "spec": {"schedule": "* * * * *"}});
    assert_eq!(
        rejection(run("CronJob", object)),
        "spec.jobTemplate.spec.template is missing or not an object"
    );
}

#[test]
fn settings_resources_reach_the_agent_containers() {
    let settings: Settings = serde_json::from_value(
        json!({"agentResources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "1"}}}),
    )
    .unwrap();
    let outcome = evaluate(
        request("Pod", "CREATE", pod(&[("input-uri", "a/b")])),
        &settings,
        &no_lookup,
    );
    let pod = mutated(outcome);
    assert_eq!(
        pod["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "1"}})
    );
}

#[test]
fn requests_with_null_or_missing_fields_are_still_evaluated() {
    let payload = json!({
        "settings": {},
        "request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "options": null, "oldObject": null,
                    "userInfo": null, "namespace": null, "object": pod(OUTPUT)},
    });
    let answer: Value = serde_json::from_slice(
        &oras_policy::validate(&serde_json::to_vec(&payload).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(answer["accepted"], true);
    let init = &answer["mutated_object"]["spec"]["initContainers"][1];
    assert_eq!(
        init["args"][4],
        "oras.default.svc.cluster.local:5000/dino/out:v1"
    );
}
