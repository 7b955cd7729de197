//! Layout of the share (`/mnt/oras` in a pod, any directory in tests).
//!
//! ```text
//! bin/oras-agent      installed by init
//! inputs/<n>/         input n (1-based, in annotation order), pulled by init
//! outputs/            staged by the launcher after the application exits
//! state/inputs        each input as reference@digest, one per line, written by init
//! state/memoized      the earlier run that made the output, written by init (memoize)
//! state/run           the application's argv, start and finish, written by the launcher
//! state/exit          the application's exit code, written by the launcher (last)
//! state/push          "ok <digest>" or "error <message>", written by the sidecar
//! ```

use std::path::{Path, PathBuf};

pub const BIN_DIR: &str = "bin";
pub const INPUTS_DIR: &str = "inputs";
pub const OUTPUTS_DIR: &str = "outputs";
pub const STATE_DIR: &str = "state";
pub const INPUTS_FILE: &str = "inputs";
pub const MEMOIZED_FILE: &str = "memoized";
pub const RUN_FILE: &str = "run";
pub const EXIT_FILE: &str = "exit";
pub const PUSH_FILE: &str = "push";
/// First word of `state/push` when the output was stored.
pub const PUSH_OK: &str = "ok";
/// First word of `state/push` when it was not.
pub const PUSH_ERROR: &str = "error";

/// Paths inside one share directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    root: PathBuf,
}

impl Share {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.root.join(BIN_DIR)
    }

    pub fn agent_binary(&self) -> PathBuf {
        self.bin_dir().join(crate::pod::AGENT_BINARY)
    }

    pub fn inputs_dir(&self) -> PathBuf {
        self.root.join(INPUTS_DIR)
    }

    /// Directory of input `number`, counted from 1 in annotation order.
    pub fn input_dir(&self, number: usize) -> PathBuf {
        self.inputs_dir().join(number.to_string())
    }

    pub fn outputs_dir(&self) -> PathBuf {
        self.root.join(OUTPUTS_DIR)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn inputs_file(&self) -> PathBuf {
        self.state_dir().join(INPUTS_FILE)
    }

    pub fn memoized_file(&self) -> PathBuf {
        self.state_dir().join(MEMOIZED_FILE)
    }

    pub fn run_file(&self) -> PathBuf {
        self.state_dir().join(RUN_FILE)
    }

    pub fn exit_file(&self) -> PathBuf {
        self.state_dir().join(EXIT_FILE)
    }

    pub fn push_file(&self) -> PathBuf {
        self.state_dir().join(PUSH_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        let share = Share::new("/mnt/oras");
        assert_eq!(share.agent_binary(), Path::new("/mnt/oras/bin/oras-agent"));
        assert_eq!(share.input_dir(2), Path::new("/mnt/oras/inputs/2"));
        assert_eq!(share.outputs_dir(), Path::new("/mnt/oras/outputs"));
        assert_eq!(share.exit_file(), Path::new("/mnt/oras/state/exit"));
        assert_eq!(share.push_file(), Path::new("/mnt/oras/state/push"));
    }
}
