//! Whatever the request and settings, the policy answers and never panics.

use oras_policy::evaluate::{AdmissionRequest, evaluate};
use oras_policy::image::ImageEntrypoint;
use oras_policy::settings::Settings;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z/:_.@ -]{0,12}".prop_map(Value::String),
        Just(json!("NA")),
        Just(json!("/")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names that matter to the policy, mixed with arbitrary ones.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("metadata".to_string()),
        Just("annotations".to_string()),
        Just("spec".to_string()),
        Just("template".to_string()),
        Just("jobTemplate".to_string()),
        Just("containers".to_string()),
        Just("initContainers".to_string()),
        Just("volumes".to_string()),
        Just("volumeMounts".to_string()),
        Just("name".to_string()),
        Just("command".to_string()),
        Just("args".to_string()),
        Just("workingDir".to_string()),
        annotation_key(),
        "[a-zA-Z]{1,8}",
    ]
}

fn annotation_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("input-uri"),
        Just("input-uri_1"),
        Just("input-uri_2"),
        Just("input-uri_x"),
        Just("output-uri"),
        Just("output-path"),
        Just("input-path"),
        Just("container"),
        Just("registry"),
        Just("oras-cache"),
        Just("unpack"),
        Just("injected"),
        Just("bogus"),
    ]
    .prop_map(|k| format!("oras.converged-computing.github.io/{k}"))
}

fn kind() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Pod"),
        Just("Job"),
        Just("CronJob"),
        Just("Deployment"),
        Just("StatefulSet"),
        Just("DaemonSet"),
        Just("ReplicaSet"),
        Just("ReplicationController"),
        Just("ConfigMap"),
    ]
    .prop_map(str::to_string)
}

/// A pod whose annotations and containers are drawn, so that most cases get past the
/// first checks and reach the injection.
fn plausible_pod() -> impl Strategy<Value = Value> {
    let annotations =
        prop::collection::btree_map(annotation_key(), "[a-z0-9/:_.@-]{0,10}|NA|/|true", 0..6);
    let argv = || prop::option::of(prop::collection::vec("[a-z $()]{0,4}", 0..3));
    let image = prop_oneof![
        Just(Value::Null),
        Just(json!(42)),
        "[a-zA-Z0-9/:@._\\[\\] -]{0,16}".prop_map(Value::String),
        Just(json!("docker.io/library/python:3.12")),
    ];
    let container = ("[a-z]{1,4}", image, argv(), argv()).prop_map(|(name, image, command, args)| {
        json!({"name": name, "image": image, "command": command, "args": args})
    });
    (annotations, prop::collection::vec(container, 0..4)).prop_map(|(annotations, containers)| {
        json!({"metadata": {"annotations": annotations}, "spec": {"containers": containers}})
    })
}

/// Whatever a host could answer to an image lookup.
fn lookup_answer() -> impl Strategy<Value = Result<ImageEntrypoint, String>> {
    let list = || prop::collection::vec("[a-z $\"]{0,4}", 0..3);
    prop::result::maybe_ok(
        (list(), list()).prop_map(|(entrypoint, cmd)| ImageEntrypoint { entrypoint, cmd }),
        "[ -~]{0,20}",
    )
}

fn request(kind: String, operation: &str, object: Value) -> Option<AdmissionRequest> {
    serde_json::from_value(
        json!({"kind": {"kind": kind}, "operation": operation, "object": object}),
    )
    .ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_objects_get_an_answer(kind in kind(), object in any_json(), op in prop_oneof![Just("CREATE"), Just("UPDATE"), Just("DELETE")], answer in lookup_answer()) {
        if let Some(request) = request(kind, op, object) {
            let _ = evaluate(request, &Settings::default(), &|_| answer.clone());
        }
    }

    #[test]
    fn plausible_pods_get_an_answer(object in plausible_pod(), answer in lookup_answer()) {
        if let Some(request) = request("Pod".into(), "CREATE", object) {
            let _ = evaluate(request, &Settings::default(), &|_| answer.clone());
        }
    }

    #[test]
    fn arbitrary_payloads_to_the_glue_get_an_answer(payload in any_json(), settings in any_json()) {
        let whole = json!({"settings": settings, "request": payload});
        let bytes = serde_json::to_vec(&whole).unwrap();
        prop_assert!(oras_policy::validate(&bytes).is_ok());
        prop_assert!(oras_policy::validate_settings(&serde_json::to_vec(&settings).unwrap()).is_ok());
        prop_assert!(oras_policy::validate(&bytes[..bytes.len() / 2]).is_ok());
    }
}
