//! The graph of steps behind an artifact: from its manifest, follow the `inputs`
//! annotation recursively. Artifacts without provenance are leaves; artifacts that
//! cannot be fetched are leaves marked missing; every artifact appears once, so a
//! (forged) cycle ends where it closes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;

use serde::Serialize;

use super::Provenance;

/// Most artifacts one walk visits: a bound against annotations that never end.
const MAX_NODES: usize = 10_000;

/// What fetching one reference gives: its manifest digest and annotations.
pub struct Fetched {
    pub digest: String,
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: usize,
    pub reference: String,
    pub digest: Option<String>,
    /// `None`: the artifact records no provenance (or was not fetched).
    pub provenance: Option<Provenance>,
    /// Why the artifact could not be fetched.
    pub missing: Option<String>,
}

/// `input` was used to make `output` (ids of [`Graph::nodes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub input: usize,
    pub output: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// Id of the artifact asked about (always 0).
    pub root: usize,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Whether the walk stopped at [`MAX_NODES`].
    pub truncated: bool,
}

/// The digest pinned in `reference@digest`, if any.
fn pinned_digest(reference: &str) -> Option<&str> {
    reference.rsplit_once('@').map(|(_, digest)| digest)
}

/// The id of `reference`'s node, added (and queued) when new; `None` when the graph is
/// full.
fn add_node(
    graph: &mut Graph,
    seen: &mut HashMap<String, usize>,
    queue: &mut Vec<usize>,
    reference: &str,
) -> Option<usize> {
    let key = pinned_digest(reference).unwrap_or(reference).to_string();
    if let Some(&id) = seen.get(&key) {
        return Some(id);
    }
    if graph.nodes.len() >= MAX_NODES {
        return None;
    }
    let id = graph.nodes.len();
    graph.nodes.push(Node {
        id,
        reference: reference.to_string(),
        digest: pinned_digest(reference).map(str::to_string),
        provenance: None,
        missing: None,
    });
    seen.insert(key, id);
    queue.push(id);
    Some(id)
}

/// Walk from `root`, asking `fetch` for each artifact once.
pub async fn build<F, Fut>(root: &str, mut fetch: F) -> Graph
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Fetched, String>>,
{
    let mut graph = Graph {
        root: 0,
        nodes: Vec::new(),
        edges: Vec::new(),
        truncated: false,
    };
    // Known artifacts by digest (or by reference when the digest is not known).
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut queue: Vec<usize> = Vec::new();
    add_node(&mut graph, &mut seen, &mut queue, root);
    let mut next = 0;
    while next < queue.len() {
        let id = queue[next];
        next += 1;
        let reference = graph.nodes[id].reference.clone();
        match fetch(reference).await {
            Ok(fetched) => {
                let provenance = Provenance::from_annotations(&fetched.annotations);
                seen.entry(fetched.digest.clone()).or_insert(id);
                graph.nodes[id].digest = Some(fetched.digest);
                for input in provenance.iter().flat_map(|p| &p.inputs) {
                    let Some(input_id) = add_node(&mut graph, &mut seen, &mut queue, input) else {
                        graph.truncated = true;
                        break;
                    };
                    graph.edges.push(Edge {
                        input: input_id,
                        output: id,
                    });
                }
                graph.nodes[id].provenance = provenance;
            }
            Err(reason) => graph.nodes[id].missing = Some(reason),
        }
    }
    graph
}

fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |colon| colon + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}

/// What is known about how a node was made, one fact per item.
fn describe(node: &Node) -> Vec<String> {
    if let Some(reason) = &node.missing {
        return vec![format!("missing: {reason}")];
    }
    let Some(provenance) = &node.provenance else {
        return vec!["no provenance (pushed by another tool)".to_string()];
    };
    let mut facts = Vec::new();
    if let Some(pod) = &provenance.pod {
        facts.push(format!("pod {pod}"));
    }
    if let Some(workload) = &provenance.workload {
        facts.push(workload.clone());
    }
    if let Some(image) = &provenance.image {
        facts.push(format!("image {image}"));
    }
    if let Some(code) = provenance.exit_code {
        facts.push(format!("exit {code}"));
    }
    if let Some(finished) = &provenance.finished {
        facts.push(format!("finished {finished}"));
    }
    if facts.is_empty() {
        facts.push("made by an unnamed run".to_string());
    }
    facts
}

impl Graph {
    fn inputs_of(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges
            .iter()
            .filter(move |e| e.output == id)
            .map(|e| e.input)
    }

    /// An indented tree from the root down to its inputs; an artifact met again is
    /// printed once more by name only.
    pub fn to_tree(&self) -> String {
        let mut out = String::new();
        let mut printed = vec![false; self.nodes.len()];
        self.write_tree(self.root, "", "", &mut printed, &mut out);
        if self.truncated {
            out.push_str("... (stopped after 10000 artifacts)\n");
        }
        out
    }

    fn write_tree(
        &self,
        id: usize,
        first: &str,
        rest: &str,
        printed: &mut [bool],
        out: &mut String,
    ) {
        let node = &self.nodes[id];
        // A pinned reference already shows its digest.
        let name = match (&node.digest, node.reference.contains('@')) {
            (Some(digest), false) => format!("{} {}", node.reference, short(digest)),
            _ => node.reference.clone(),
        };
        if printed[id] {
            let _ = writeln!(out, "{first}{name} (shown above)");
            return;
        }
        printed[id] = true;
        let _ = writeln!(
            out,
            "{first}{name}\n{rest}    {}",
            describe(node).join(", ")
        );
        let inputs: Vec<usize> = self.inputs_of(id).collect();
        for (index, input) in inputs.iter().enumerate() {
            let last = index + 1 == inputs.len();
            let (branch, indent) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            self.write_tree(
                *input,
                &format!("{rest}{branch}"),
                &format!("{rest}{indent}"),
                printed,
                out,
            );
        }
    }

    /// Graphviz: one box per artifact, an arrow from each input to what it made.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
        for node in &self.nodes {
            let digest = node.digest.as_deref().map(short).unwrap_or("?");
            let name = node
                .reference
                .split_once('@')
                .map_or(node.reference.as_str(), |(name, _)| name);
            let label = format!("{name}\n{digest}\n{}", describe(node).join("\n"));
            let style = if node.missing.is_some() {
                ", style=dashed"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  n{} [label=\"{}\"{style}];",
                node.id,
                dot_escape(&label)
            );
        }
        for edge in &self.edges {
            let _ = writeln!(out, "  n{} -> n{};", edge.input, edge.output);
        }
        out.push_str("}\n");
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use oras_contract::annotations::key;
    use oras_contract::provenance::keys;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// An in-memory registry: reference (or digest) → (digest, inputs).
    fn store(entries: &[(&str, char, Option<&[String]>)]) -> HashMap<String, Fetched> {
        let mut map = HashMap::new();
        for (reference, c, inputs) in entries {
            let mut annotations = BTreeMap::new();
            if let Some(inputs) = inputs {
                annotations.insert(key(keys::INPUTS), inputs.join(" "));
                annotations.insert(key(keys::POD), format!("ns/{reference}"));
            }
            for name in [reference.to_string(), digest(*c)] {
                map.insert(
                    name,
                    Fetched {
                        digest: digest(*c),
                        annotations: annotations.clone(),
                    },
                );
            }
        }
        map
    }

    async fn walk(map: &HashMap<String, Fetched>, root: &str) -> Graph {
        build(root, |reference| {
            let key = pinned_digest(&reference).unwrap_or(&reference).to_string();
            let found = map.get(&key).map(|f| Fetched {
                digest: f.digest.clone(),
                annotations: f.annotations.clone(),
            });
            async move { found.ok_or_else(|| format!("{reference}: manifest unknown")) }
        })
        .await
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_two_step_workflow_links_each_output_to_its_inputs() {
        let a = format!("r/raw:1@{}", digest('a'));
        let b = format!("r/step1:1@{}", digest('b'));
        let map = store(&[
            ("raw", 'a', None),
            ("step1", 'b', Some(std::slice::from_ref(&a))),
            ("r/step2:1", 'c', Some(std::slice::from_ref(&b))),
        ]);
        let graph = run(walk(&map, "r/step2:1"));
        assert_eq!(graph.nodes.len(), 3);
        assert_eq!(graph.nodes[0].digest.as_deref(), Some(digest('c').as_str()));
        assert_eq!(
            graph.edges,
            [
                Edge {
                    input: 1,
                    output: 0
                },
                Edge {
                    input: 2,
                    output: 1
                }
            ]
        );
        assert_eq!(graph.nodes[2].provenance, None);
        let tree = graph.to_tree();
        assert!(tree.contains("pod ns/r/step2:1"), "{tree}");
        assert!(tree.contains("└── r/step1:1@"), "{tree}");
        assert!(tree.contains("no provenance"), "{tree}");
        let dot = graph.to_dot();
        assert!(dot.starts_with("digraph lineage {"), "{dot}");
        assert!(
            dot.contains("n1 -> n0;") && dot.contains("n2 -> n1;"),
            "{dot}"
        );
        let json: serde_json::Value = serde_json::from_str(&graph.to_json()).unwrap();
        assert_eq!(
            json["edges"][0],
            serde_json::json!({"input": 1, "output": 0})
        );
    }

    #[test]
    fn a_missing_input_is_a_leaf_marked_missing() {
        let gone = format!("r/gone:1@{}", digest('9'));
        let map = store(&[("r/out:1", 'c', Some(std::slice::from_ref(&gone)))]);
        let graph = run(walk(&map, "r/out:1"));
        assert_eq!(graph.nodes.len(), 2);
        assert!(
            graph.nodes[1]
                .missing
                .as_deref()
                .unwrap()
                .contains("manifest unknown")
        );
        assert!(graph.to_tree().contains("missing: "));
        assert!(graph.to_dot().contains("style=dashed"));
    }

    #[test]
    fn a_forged_cycle_ends_where_it_closes() {
        let to_b = format!("r/b@{}", digest('b'));
        let to_a = format!("r/a@{}", digest('a'));
        let map = store(&[
            ("r/a", 'a', Some(std::slice::from_ref(&to_b))),
            ("r/b", 'b', Some(std::slice::from_ref(&to_a))),
        ]);
        let graph = run(walk(&map, &to_a));
        assert_eq!(graph.nodes.len(), 2);
        // Started from a tag, the cycle closes on the same node too.
        assert_eq!(run(walk(&map, "r/a")).nodes.len(), 2);
        assert_eq!(graph.edges.len(), 2);
        let tree = graph.to_tree();
        assert!(tree.contains("(shown above)"), "{tree}");
        assert_eq!(tree.lines().count(), 5, "{tree}");
    }

    #[test]
    fn labels_are_escaped_for_graphviz() {
        assert_eq!(dot_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
