//! Names of what the policy adds to a pod.

/// The emptyDir volume shared by the agent containers and the launcher.
pub const SHARE_VOLUME: &str = "oras-share";
/// Where the share is mounted in every container that sees it.
pub const SHARE_MOUNT_PATH: &str = "/mnt/oras";
/// The init container that installs the agent and pulls the inputs.
pub const INIT_CONTAINER: &str = "oras-init";
/// The native sidecar that pushes the output.
pub const SIDECAR_CONTAINER: &str = "oras";
/// Port of the in-namespace registry Service.
pub const CACHE_PORT: u16 = 5000;
/// Name of the agent executable.
pub const AGENT_BINARY: &str = "oras-agent";
/// Suffix of the Secret holding a cache's generated credentials (`<cache>-credentials`,
/// keys as in [`crate::annotations::credentials`]).
pub const CREDENTIALS_SECRET_SUFFIX: &str = "-credentials";

/// Name of the Secret the controller writes a cache's generated credentials to, and
/// that the policy gives the agent containers: `<cache>-credentials`.
pub fn credentials_secret(cache: &str) -> String {
    format!("{cache}{CREDENTIALS_SECRET_SUFFIX}")
}

/// Path of the agent binary inside the launcher container, as installed by `init`.
pub fn launcher_agent_path() -> String {
    format!(
        "{SHARE_MOUNT_PATH}/{}/{AGENT_BINARY}",
        crate::share::BIN_DIR
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_credentials_secret_is_named_after_the_cache() {
        assert_eq!(super::credentials_secret("oras"), "oras-credentials");
    }

    #[test]
    fn launcher_agent_path_is_inside_the_share() {
        assert_eq!(super::launcher_agent_path(), "/mnt/oras/bin/oras-agent");
    }
}
