//! What the policy's host tests share: annotations written with their short keys.

#![allow(dead_code)]

use serde_json::{Value, json};

pub const P: &str = "oras.converged-computing.github.io/";

/// An output and its path: enough for the policy to rewrite a pod.
pub const OUTPUT: &[(&str, &str)] = &[("output-uri", "dino/out:v1"), ("output-path", "out.txt")];

/// `metadata.annotations` from short keys and values.
pub fn annotations(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| (format!("{P}{k}"), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
