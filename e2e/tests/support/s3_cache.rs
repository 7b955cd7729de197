//! A cache on S3 with its replicas, on 127.0.0.1, shared by `tests/cache_s3.rs` and
//! `benches/replicas.rs`: moto as the bucket, Debian's `docker-registry` processes started
//! from exactly the registry environment the controller renders for the cache (its
//! Deployment's container env, the secretKeyRefs resolved to the test's Secrets, only the
//! listen address moved), and a round-robin TCP proxy standing for the cache's Service
//! (kube-proxy spreads connections over the ready pods; a connection to a stopped
//! replica goes to the next one, as the Service drops a pod that fails its probe).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use oras_controller::OrasCache;
use oras_controller::builders::{self, deployment, http_secret};
use oras_testkit::registry::{REGISTRY_BINARY, free_port};
use oras_testkit::{Registry, S3Server};

pub const BUCKET: &str = "oras-cache";
pub const ROOT: &str = "/caches/e2e";
pub const S3_SECRET: &str = "oras-s3";
pub const ACCESS_KEY_ID: &str = "oras-test-access-key";
pub const SECRET_ACCESS_KEY: &str = "oras-test-secret-key";

/// A TCP proxy on 127.0.0.1 handing each connection to the next backend in turn.
pub struct RoundRobin {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Option<JoinHandle<()>>,
    /// Connections handed to each backend.
    counts: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    pub fn start(backends: Vec<u16>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let next = AtomicUsize::new(0);
        let accepted = {
            let stop = stop.clone();
            let counts = counts.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let first = next.fetch_add(1, Ordering::SeqCst);
                    // The next backend that takes the connection.
                    let upstream = (0..backends.len()).find_map(|offset| {
                        let index = (first + offset) % backends.len();
                        TcpStream::connect(("127.0.0.1", backends[index]))
                            .ok()
                            .map(|stream| (index, stream))
                    });
                    let Some((index, upstream)) = upstream else {
                        continue;
                    };
                    counts[index].fetch_add(1, Ordering::SeqCst);
                    pipe(client, upstream);
                }
            })
        };
        Ok(Self {
            port,
            stop,
            accepted: Some(accepted),
            counts,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections each backend was given so far.
    pub fn counts(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

/// Copies both ways until either side closes.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_back), Ok(upstream_back)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        })
    };
    copy(client, upstream);
    copy(upstream_back, client_back);
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accepted) = self.accepted.take() {
            let _ = accepted.join();
        }
    }
}

/// The cache the controller would deploy: `replicas` registry pods on the bucket.
pub fn cache(s3: &S3Server, replicas: i32) -> OrasCache {
    let mut cache = OrasCache::new(
        "oras",
        serde_json::from_value(serde_json::json!({
            "replicas": replicas,
            "storage": {"s3": {
                "bucket": BUCKET, "endpoint": s3.host(), "insecure": true,
                "forcePathStyle": true, "rootDirectory": ROOT, "secretName": S3_SECRET
            }}
        }))
        .unwrap(),
    );
    cache.metadata.namespace = Some("workflows".into());
    cache.metadata.uid = Some("3c1e5a4e-0000-4000-8000-00000000b0b0".into());
    assert_eq!(builders::validate(&cache), Ok(()));
    cache
}

fn owner(cache: &OrasCache) -> OwnerReference {
    OwnerReference {
        api_version: "cache.converged-computing.github.io/v1alpha1".into(),
        kind: "OrasCache".into(),
        name: "oras".into(),
        uid: cache.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The registry container's environment of the Deployment the controller applies for
/// `cache`, with its generated HTTP secret `http_secret_value`.
pub fn rendered_env(cache: &OrasCache, http_secret_value: &str) -> Vec<EnvVar> {
    assert!(deployment::wanted(cache), "a cache on S3 is a Deployment");
    let mut template = builders::pod_template(cache);
    http_secret::annotate(&mut template, http_secret_value);
    let deployment = deployment::deployment(cache, owner(cache), template);
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(cache.spec.replicas));
    let pod = spec.template.spec.unwrap();
    let registry = pod
        .containers
        .into_iter()
        .find(|c| c.name == builders::REGISTRY_CONTAINER)
        .expect("the registry container");
    registry.env.unwrap()
}

/// `(name, value)` pairs for a registry process on 127.0.0.1:`port`: literal values as
/// rendered, secretKeyRefs read from `secrets` (Secret name -> key -> value) as the
/// kubelet would, only `REGISTRY_HTTP_ADDR` moved to the test's port.
pub fn resolve(
    env: &[EnvVar],
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    port: u16,
) -> Vec<(String, String)> {
    env.iter()
        .map(|var| {
            let value = match (&var.value, &var.value_from) {
                (Some(value), None) => value.clone(),
                (None, Some(from)) => {
                    let key = from
                        .secret_key_ref
                        .as_ref()
                        .unwrap_or_else(|| panic!("{} is not from a Secret", var.name));
                    secrets
                        .get(&key.name)
                        .and_then(|data| data.get(&key.key))
                        .unwrap_or_else(|| {
                            panic!("{} names Secret {} key {}", var.name, key.name, key.key)
                        })
                        .clone()
                }
                _ => panic!("{} has no value", var.name),
            };
            if var.name == "REGISTRY_HTTP_ADDR" {
                assert_eq!(value, ":5000", "the registry port");
                return (var.name.clone(), format!("127.0.0.1:{port}"));
            }
            (var.name.clone(), value)
        })
        .collect()
}

/// The bucket, the replicas started from the rendered configuration, and the proxy.
pub struct S3Cache {
    pub s3: S3Server,
    pub replicas: Vec<Registry>,
    pub service: RoundRobin,
    pub cache: OrasCache,
}

impl S3Cache {
    /// `replicas` Debian `docker-registry` processes of one cache on a new bucket.
    pub fn start(replicas: usize) -> Self {
        Self::start_with(Path::new(REGISTRY_BINARY), replicas)
    }

    /// `replicas` processes of the registry `binary` (Debian's `docker-registry`, or
    /// distribution 3's `registry` from `make tools`) of one cache on a new bucket.
    pub fn start_with(binary: &Path, replicas: usize) -> Self {
        let s3 = S3Server::start().unwrap_or_else(|e| panic!("starting moto: {e}"));
        s3.create_bucket(BUCKET).unwrap();
        let cache = cache(&s3, i32::try_from(replicas).unwrap());
        // The generated HTTP secret, as the controller writes it into its Secret.
        let value = http_secret::generate().unwrap();
        let generated = http_secret::secret(&cache, owner(&cache), &value);
        let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        secrets.insert(
            generated.metadata.name.clone().unwrap(),
            generated
                .data
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
                .collect(),
        );
        secrets.insert(
            S3_SECRET.into(),
            BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY_ID.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), SECRET_ACCESS_KEY.into()),
            ]),
        );
        let env = rendered_env(&cache, &value);
        let registries: Vec<Registry> = (0..replicas)
            .map(|_| {
                let port = free_port().unwrap();
                Registry::start_with_env(binary, port, resolve(&env, &secrets, port))
                    .unwrap_or_else(|e| panic!("starting a replica: {e}"))
            })
            .collect();
        let service = RoundRobin::start(registries.iter().map(Registry::port).collect()).unwrap();
        Self {
            s3,
            replicas: registries,
            service,
            cache,
        }
    }

    /// `127.0.0.1:<port>/<repository_and_tag>` through the Service.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("127.0.0.1:{}/{repository_and_tag}", self.service.port())
    }
}
