//! The configuration files of the node's components, every state directory under the
//! node's own directory.

use std::path::Path;

use super::{BRIDGE, CLUSTER_DOMAIN, NODE_IP, POD_CIDR};

/// containerd's own config: its root, state, socket and runc's state in `dir`.
/// `restrict_oom_score_adj`: the sandbox withholds CAP_SYS_RESOURCE, so no container may
/// get a lower `oom_score_adj` than containerd's.
pub fn containerd(dir: &Path, pause_image: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "{pause_image}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/net.d"
"#
    )
}

/// The pod network: Debian's bridge plugin on the bridge the node made, addresses from
/// host-local with its data in `dir`.
pub fn cni(dir: &Path) -> String {
    let ipam = dir.join("cni-ipam");
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "oras-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam,
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP.to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
    .to_string()
}

/// The kubelet: cgroupfs (containerd 1.6 does not report a driver), no swap check, the
/// kernel's defaults left alone (this sandbox cannot change them), no local-storage
/// accounting and lax eviction (a shared disk), the node's DNS on the bridge.
pub fn kubelet(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
protectKernelDefaults: true
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{NODE_IP}]
resolvConf: {d}/resolv.conf
healthzBindAddress: 127.0.0.1
healthzPort: 0
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
localStorageCapacityIsolation: false
"#
    )
}

/// CoreDNS as a host process on the bridge address: the cluster domain from the API
/// server, nothing forwarded (there is no upstream to reach).
pub fn corefile(kubeconfig: &Path) -> String {
    format!(
        ".:53 {{\n  bind {NODE_IP}\n  errors\n  kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n    \
         kubeconfig {} oras-test\n    pods insecure\n    fallthrough in-addr.arpa ip6.arpa\n  }}\n  \
         cache 5\n}}\n",
        kubeconfig.display()
    )
}
