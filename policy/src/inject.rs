//! Rewrites a pod spec (raw JSON, so that no field is dropped) according to a plan: the
//! share volume, the `oras-init` init container, the `oras` sidecar when there is an
//! output, and the launcher container's command.

use oras_contract::agent_args::{LaunchCommand, MemoizeKey};
use oras_contract::annotations as keys;
use oras_contract::pod::{
    INIT_CONTAINER, SHARE_MOUNT_PATH, SHARE_VOLUME, SIDECAR_CONTAINER, launcher_agent_path,
};
use oras_contract::provenance::command_digest;
use serde_json::{Map, Value, json};

use crate::agent_containers::{Launcher, init_container, share_mount, sidecar_container};
use crate::image::{ImageLookup, application_argv, qualified_image};
use crate::plan::Plan;
use crate::settings::AgentResources;

/// Whether a pod spec already has the share volume (it was mutated before).
pub fn has_share_volume(spec: &Map<String, Value>) -> bool {
    spec.get("volumes")
        .and_then(Value::as_array)
        .is_some_and(|volumes| volumes.iter().any(|v| v["name"] == SHARE_VOLUME))
}

/// Mutates `spec` in place; on error nothing has been changed. `lookup` is asked for the
/// launcher's image only when the launcher has no `command`, after every other check.
pub fn inject(
    spec: &mut Map<String, Value>,
    plan: &Plan,
    resources: &AgentResources,
    lookup: ImageLookup,
) -> Result<(), String> {
    list_field(spec, "volumes", "spec")?;
    let names = container_names(spec, "containers")?;
    if names.is_empty() {
        return Err("the pod has no containers".into());
    }
    let init_names = container_names(spec, "initContainers")?;
    let mut reserved = vec![INIT_CONTAINER];
    if plan.output.is_some() {
        reserved.push(SIDECAR_CONTAINER);
    }
    for name in reserved {
        if names.iter().chain(&init_names).any(|n| n == name) {
            return Err(format!(
                "the pod already has a container named {name:?}, the name of the container oras-operator adds; rename it"
            ));
        }
    }
    let launcher_index = launcher_index(&names, plan)?;
    let launch = launch_command(
        &spec["containers"][launcher_index],
        &names[launcher_index],
        plan,
        lookup,
    )?;

    let recorded = Launcher {
        image: spec["containers"][launcher_index]["image"]
            .as_str()
            .map(str::to_string),
        command_digest: command_digest(&launch.command),
    };
    let memoize = match (&plan.output, plan.step.memoize) {
        (Some(output), true) => Some(MemoizeKey {
            output: output.clone(),
            image: recorded.image.clone().unwrap_or_default(),
            command_digest: recorded.command_digest.clone(),
        }),
        _ => None,
    };

    let launcher = &mut spec["containers"][launcher_index];
    launcher["command"] = json!([launcher_agent_path()]);
    launcher["args"] = json!(launch.argv());
    push_item(launcher, "volumeMounts", share_mount());

    let inits = spec
        .entry("initContainers")
        .or_insert_with(|| Value::Array(Vec::new()));
    push_to_array(inits, init_container(plan, memoize, resources));
    if let Some(output) = &plan.output {
        push_to_array(inits, sidecar_container(plan, output, &recorded, resources));
    }
    let volumes = spec
        .entry("volumes")
        .or_insert_with(|| Value::Array(Vec::new()));
    push_to_array(volumes, json!({"name": SHARE_VOLUME, "emptyDir": {}}));
    Ok(())
}

/// Names of the containers in `spec[field]`; the field may be absent.
fn container_names(spec: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    let Some(list) = list_field(spec, field, "spec")? else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            c.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("spec.{field}[{i}] has no name"))
        })
        .collect()
}

fn launcher_index(names: &[String], plan: &Plan) -> Result<usize, String> {
    let listed = || {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &plan.step.container {
        Some(wanted) => names.iter().position(|n| n == wanted).ok_or_else(|| {
            format!(
                "annotation {}={wanted:?} names no container of the pod; its containers are {}",
                keys::key(keys::CONTAINER),
                listed()
            )
        }),
        None if names.len() == 1 => Ok(0),
        None => Err(format!(
            "the pod has {} containers ({}): set annotation {} to the one that runs the application",
            names.len(),
            listed(),
            keys::key(keys::CONTAINER)
        )),
    }
}

fn launch_command(
    container: &Value,
    name: &str,
    plan: &Plan,
    lookup: ImageLookup,
) -> Result<LaunchCommand, String> {
    let argv_of = |field: &str| -> Result<Vec<String>, String> {
        match container.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_string).ok_or_else(|| {
                        format!("container {name:?} has a non-string item in {field}")
                    })
                })
                .collect(),
            Some(_) => Err(format!(
                "container {name:?} has a {field} that is not a list"
            )),
        }
    };
    let command = argv_of("command")?;
    let args = argv_of("args")?;

    if plan.step.input_path.as_deref() == Some("/") {
        return Err(format!(
            "annotation {}=\"/\" would place inputs over the container's root; name a directory",
            keys::key(keys::INPUT_PATH)
        ));
    }
    if plan.step.output_path.as_deref() == Some("/") {
        return Err(format!(
            "annotation {}=\"/\" would push the container's whole root; name a file or directory",
            keys::key(keys::OUTPUT_PATH)
        ));
    }
    let working_dir = container.get("workingDir").and_then(Value::as_str);
    if plan.step.input_path.is_none() && !plan.inputs.is_empty() && working_dir == Some("/") {
        return Err(format!(
            "container {name:?} works in \"/\", where inputs would be placed; set annotation {} or the container's workingDir",
            keys::key(keys::INPUT_PATH)
        ));
    }
    let mounts = match container.as_object() {
        Some(fields) => list_field(fields, "volumeMounts", &format!("container {name:?}"))?,
        None => None,
    };
    if mounts.is_some_and(|m| m.iter().any(|m| m["mountPath"] == SHARE_MOUNT_PATH)) {
        return Err(format!(
            "container {name:?} already mounts something at {SHARE_MOUNT_PATH}, where oras-operator mounts its share"
        ));
    }
    // Last, because it is the only check that may ask a registry.
    let command = if command.is_empty() {
        image_command(container, name, args, lookup)?
    } else {
        command.into_iter().chain(args).collect()
    };
    Ok(LaunchCommand {
        share: SHARE_MOUNT_PATH.to_string(),
        input_path: plan.step.input_path.clone(),
        output_path: plan.step.output_path.clone(),
        output_pipe: plan.step.output_pipe.clone(),
        push_on_failure: plan.step.push_on_failure,
        wait_push: plan.output.is_some(),
        debug: plan.step.debug,
        command,
    })
}

/// The application argv of a launcher without `command`, from its image's
/// ENTRYPOINT/CMD; refused when the image cannot be resolved or runs nothing.
fn image_command(
    container: &Value,
    name: &str,
    args: Vec<String>,
    lookup: ImageLookup,
) -> Result<Vec<String>, String> {
    let image = match container.get("image") {
        Some(Value::String(image)) => image,
        None | Some(Value::Null) => {
            return Err(format!(
                "container {name:?} has neither command nor image: set command (and args) on the container"
            ));
        }
        Some(other) => {
            return Err(format!(
                "container {name:?} has an image that is not a string: {other}"
            ));
        }
    };
    let qualified = qualified_image(image)
        .map_err(|problem| format!("container {name:?} has image {image:?}, which {problem}"))?;
    let entrypoint = lookup(&qualified).map_err(|answer| {
        format!(
            "container {name:?} has no command and the entrypoint of its image {qualified:?} cannot be resolved: {answer}; set command (and args) on the container, or let policy-server pull the image"
        )
    })?;
    let argv = application_argv(&entrypoint, args);
    if argv.is_empty() {
        return Err(format!(
            "container {name:?} has no command and its image {qualified:?} has neither ENTRYPOINT nor CMD: set command (and args) on the container"
        ));
    }
    Ok(argv)
}

/// `object[field]` as a list; absent and `null` are `None`, anything else is refused.
fn list_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    owner: &str,
) -> Result<Option<&'a Vec<Value>>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(format!("{owner}.{field} must be a list")),
    }
}

fn push_item(object: &mut Value, field: &str, item: Value) {
    push_to_array(&mut object[field], item);
}

/// Appends to a list checked by [`list_field`], which may also be absent or `null`.
fn push_to_array(list: &mut Value, item: Value) {
    match list {
        Value::Array(items) => items.push(item),
        other => *other = json!([item]),
    }
}
