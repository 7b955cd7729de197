//! A cache with `spec.auth.enabled`, as its users meet it. The registry and the gate run
//! from exactly what the controller renders: the registry container's environment and
//! the gate container's arguments of the StatefulSet the controller applies, and the
//! htpasswd file of the `<cache>-htpasswd` Secret (only their addresses and the mount
//! path are moved to 127.0.0.1 and a temporary folder). Then the agent and oras-py use
//! the generated credentials: the push password pushes and pulls, the pull password
//! pulls and its push is refused with a message saying so, anonymous requests are
//! refused. Against Debian's `docker-registry` (distribution 2.8) and distribution v3
//! (`make tools`; the cache's default image is distribution 3).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use oras_controller::OrasCache;
use oras_controller::builders::credentials::Credentials;
use oras_controller::builders::{self, auth, credentials};
use oras_e2e::runner::find_agent_binary;
use oras_testkit::registry::{REGISTRY_BINARY, free_port, http};
use oras_testkit::{OrasPy, Registry};

/// The cache's registry (behind the gate), the gate, and the Secret's credentials.
struct AuthCache {
    registry: Registry,
    gate: GateProcess,
    credentials: Credentials,
    _files: tempfile::TempDir,
}

/// `oras-controller gate`, killed on drop.
struct GateProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for GateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The controller binary of this build (the gate is its `gate` subcommand).
fn controller_binary() -> PathBuf {
    let target = oras_testkit::oras_py::target_dir();
    let path = target.join("debug/oras-controller");
    assert!(
        path.is_file(),
        "the controller is not built: run `cargo build -p oras-controller` (looked for {})",
        path.display()
    );
    path
}

fn owner(cache: &OrasCache) -> OwnerReference {
    OwnerReference {
        api_version: "cache.converged-computing.github.io/v1alpha1".into(),
        kind: "OrasCache".into(),
        name: cache.metadata.name.clone().unwrap(),
        uid: cache.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn pod_spec(cache: &OrasCache, htpasswd: &str) -> PodSpec {
    let mut template = builders::pod_template(cache);
    auth::secure(&mut template, cache, "the-gate-image", htpasswd);
    builders::statefulset_of(cache, owner(cache), template)
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
}

impl AuthCache {
    fn start(registry_binary: &Path) -> Self {
        let mut cache = OrasCache::new(
            "oras",
            serde_json::from_value(serde_json::json!({"auth": {"enabled": true}})).unwrap(),
        );
        cache.metadata.namespace = Some("workflows".into());
        cache.metadata.uid = Some("9d3f0a52-0000-4000-8000-00000000a0a0".into());
        let owner = owner(&cache);

        // What the controller writes: the credentials, the htpasswd Secret, the pod.
        let credentials = Credentials::generate().unwrap();
        let htpasswd = credentials::htpasswd(&cache, &credentials).unwrap();
        let secret = credentials::htpasswd_secret(&cache, owner, &htpasswd);
        let pod = pod_spec(&cache, &htpasswd);

        // The Secret volume, as the kubelet would mount it.
        let files = tempfile::tempdir().unwrap();
        let mount = files.path().join("auth");
        std::fs::create_dir(&mount).unwrap();
        for (key, value) in secret.data.as_ref().unwrap() {
            std::fs::write(mount.join(key), &value.0).unwrap();
        }
        let local = |value: &str| value.replace(auth::AUTH_PATH, mount.to_str().unwrap());

        let registry_port = free_port().unwrap();
        let container = |name: &str| {
            pod.containers
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no container {name}"))
        };
        let mut env = Vec::new();
        for var in container("registry").env.as_ref().unwrap() {
            let value = var
                .value
                .as_deref()
                .unwrap_or_else(|| panic!("{} is not a literal", var.name));
            match var.name.as_str() {
                "REGISTRY_HTTP_ADDR" => {
                    assert_eq!(value, "127.0.0.1:5001", "the registry only on localhost");
                    env.push((var.name.clone(), format!("127.0.0.1:{registry_port}")));
                }
                // The test's own storage folder.
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY" => {}
                _ => env.push((var.name.clone(), local(value))),
            }
        }
        let registry = Registry::start_with_env(registry_binary, registry_port, env)
            .unwrap_or_else(|e| panic!("starting {}: {e}", registry_binary.display()));

        let gate_port = free_port().unwrap();
        let mut args = Vec::new();
        let mut rendered = container("gate").args.clone().unwrap().into_iter();
        while let Some(arg) = rendered.next() {
            match arg.as_str() {
                "--listen" => {
                    rendered.next();
                    args.extend(["--listen".into(), format!("127.0.0.1:{gate_port}")]);
                }
                "--upstream" => {
                    assert_eq!(rendered.next().as_deref(), Some("127.0.0.1:5001"));
                    args.extend(["--upstream".into(), format!("127.0.0.1:{registry_port}")]);
                }
                other => args.push(local(other)),
            }
        }
        let log = files.path().join("gate.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(controller_binary())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting the gate");
        let gate = GateProcess {
            child,
            port: gate_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _, _)) = http(gate_port, "GET", "/oras-gate/healthz", &[], &[]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the gate did not turn healthy; its log:\n{}",
                std::fs::read_to_string(&gate.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            registry,
            gate,
            credentials,
            _files: files,
        }
    }

    fn reference(&self, repository_and_tag: &str) -> String {
        format!("127.0.0.1:{}/{repository_and_tag}", self.gate.port)
    }
}

/// The agent with exactly these credentials (none: anonymous).
fn agent(
    user: Option<&str>,
    push: Option<&str>,
    pull: Option<&str>,
    args: &[&str],
    cwd: &Path,
) -> Output {
    let mut command = Command::new(find_agent_binary().expect("the agent binary"));
    command
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PUSH_PASS")
        .env_remove("ORAS_PULL_PASS")
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .env("ORAS_AGENT_RETRY_SECONDS", "2")
        .args(args)
        .current_dir(cwd);
    for (key, value) in [
        ("ORAS_USER", user),
        ("ORAS_PUSH_PASS", push),
        ("ORAS_PULL_PASS", pull),
    ] {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command.output().expect("running the agent")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const ORAS_PY: &str = "import sys, oras.client\n\
    host, ref, user, password, mode = sys.argv[1:6]\n\
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend='basic')\n\
    client.auth.set_basic_auth(user, password)\n\
    if mode == 'pull':\n\
    \x20   for path in client.pull(target=ref, outdir='.'):\n\
    \x20       print(path)\n\
    else:\n\
    \x20   response = client.push(target=ref, files=sys.argv[6:])\n\
    \x20   print(response.status_code)\n\
    \x20   response.raise_for_status()\n";

fn the_generated_credentials_guard_the_cache(registry_binary: &Path) {
    let cache = AuthCache::start(registry_binary);
    let Credentials {
        user,
        push_password: push,
        pull_password: pull,
    } = cache.credentials.clone();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("results.txt"), "behind the gate\n").unwrap();
    // 16 MiB streams through the gate in one upload.
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    let reference = cache.reference("workflow/results:v1");

    // The push password pushes.
    let pushed = agent(
        Some(&user),
        Some(&push),
        None,
        &["push", "--plain-http", &reference, "results.txt", "big.bin"],
        dir,
    );
    assert!(
        pushed.status.success(),
        "push with the push password: {}",
        stderr(&pushed)
    );

    // The pull password pulls what was pushed.
    let pulled = agent(
        Some(&user),
        None,
        Some(&pull),
        &["pull", "--plain-http", &reference, "-o", "pulled"],
        dir,
    );
    assert!(
        pulled.status.success(),
        "pull with the pull password: {}",
        stderr(&pulled)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("pulled/results.txt")).unwrap(),
        "behind the gate\n"
    );
    assert!(std::fs::read(dir.join("pulled/big.bin")).unwrap() == big);

    // The pull password cannot push, under either user name, and says why.
    let other = cache.reference("workflow/results:overwritten");
    for name in [user.as_str(), credentials::PULL_USER] {
        let refused = agent(
            Some(name),
            Some(&pull),
            None,
            &["push", "--plain-http", &other, "results.txt"],
            dir,
        );
        assert!(
            !refused.status.success(),
            "a push with the pull password succeeded"
        );
        let text = stderr(&refused);
        assert!(
            text.contains("the pull credentials of this cache (ORAS_PULL_PASS) can only read; push with ORAS_PUSH_PASS"),
            "{text}"
        );
    }
    let gone = agent(
        Some(&user),
        None,
        Some(&push),
        &["pull", "--plain-http", &other, "-o", "nothing"],
        dir,
    );
    assert!(!gone.status.success(), "the refused push left nothing");

    // Anonymous: neither pull nor push; a wrong password neither.
    let anonymous = agent(
        None,
        None,
        None,
        &["pull", "--plain-http", &reference, "-o", "anon"],
        dir,
    );
    assert!(!anonymous.status.success(), "an anonymous pull succeeded");
    assert!(
        stderr(&anonymous).contains(&reference),
        "{}",
        stderr(&anonymous)
    );
    let anonymous = agent(
        None,
        None,
        None,
        &["push", "--plain-http", &other, "results.txt"],
        dir,
    );
    assert!(!anonymous.status.success(), "an anonymous push succeeded");
    let wrong = agent(
        Some(&user),
        None,
        Some("not-the-password"),
        &["pull", "--plain-http", &reference, "-o", "wrong"],
        dir,
    );
    assert!(!wrong.status.success(), "a wrong password pulled");
    let (status, headers, _) = http(cache.gate.port, "GET", "/v2/", &[], &[]).unwrap();
    assert_eq!(status, 401, "anonymous GET /v2/");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Basic")),
        "{headers:?}"
    );

    // oras-py with the same credentials: pulls the agent's artifact with the pull
    // password, pushes with the push password, and is refused a push with the pull one.
    let oras_py = OrasPy::shared().expect("the ORAS Python SDK");
    let host = format!("127.0.0.1:{}", cache.gate.port);
    let py_dir = dir.join("py");
    std::fs::create_dir(&py_dir).unwrap();
    oras_py
        .run(ORAS_PY, &[&host, &reference, &user, &pull, "pull"], &py_dir)
        .expect("oras-py pulls with the pull password");
    assert_eq!(
        std::fs::read_to_string(py_dir.join("results.txt")).unwrap(),
        "behind the gate\n"
    );
    std::fs::write(py_dir.join("from-python.txt"), "pushed by oras-py\n").unwrap();
    let py_reference = cache.reference("workflow/python:v1");
    oras_py
        .run(
            ORAS_PY,
            &[
                &host,
                &py_reference,
                &user,
                &push,
                "push",
                "from-python.txt",
            ],
            &py_dir,
        )
        .expect("oras-py pushes with the push password");
    let pulled = agent(
        Some(&user),
        None,
        Some(&pull),
        &["pull", "--plain-http", &py_reference, "-o", "from-py"],
        dir,
    );
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(
        std::fs::read_to_string(dir.join("from-py/from-python.txt")).unwrap(),
        "pushed by oras-py\n"
    );
    let refused = oras_py.run(
        ORAS_PY,
        &[
            &host,
            &cache.reference("workflow/python:refused"),
            &user,
            &pull,
            "push",
            "from-python.txt",
        ],
        &py_dir,
    );
    assert!(refused.is_err(), "oras-py pushed with the pull password");

    // The registry itself never saw a plain password in its configuration.
    let log = cache.registry.log();
    assert!(!log.contains(&push) && !log.contains(&pull));
}

#[test]
fn with_debian_docker_registry_2_8() {
    the_generated_credentials_guard_the_cache(Path::new(REGISTRY_BINARY));
}

#[test]
fn with_distribution_3_from_make_tools() {
    let registry = oras_testkit::tools::tool("registry").unwrap_or_else(|e| panic!("{e}"));
    the_generated_credentials_guard_the_cache(&registry);
}
