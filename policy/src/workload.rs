//! Where the pod template of each kind lives.

/// JSON pointer of the pod (or pod template) inside an object of `kind`; `None` for
/// kinds without one.
pub fn pod_template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Job"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Human name of the template's place, for messages.
pub fn describe(pointer: &str) -> String {
    if pointer.is_empty() {
        "the pod".to_string()
    } else {
        pointer.trim_start_matches('/').replace('/', ".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_controller_has_its_template() {
        assert_eq!(pod_template_pointer("Pod"), Some(""));
        for kind in [
            "Job",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "ReplicationController",
        ] {
            assert_eq!(pod_template_pointer(kind), Some("/spec/template"), "{kind}");
        }
        assert_eq!(
            pod_template_pointer("CronJob"),
            Some("/spec/jobTemplate/spec/template")
        );
        assert_eq!(pod_template_pointer("ConfigMap"), None);
    }

    #[test]
    fn templates_are_described_as_field_paths() {
        assert_eq!(
            describe("/spec/jobTemplate/spec/template"),
            "spec.jobTemplate.spec.template"
        );
        assert_eq!(describe(""), "the pod");
    }
}
