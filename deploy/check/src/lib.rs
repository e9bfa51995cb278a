//! Checks of the Kubernetes manifests under `deploy/k8s/`, offline and without a cluster.
//!
//! - [`load_documents`] reads every YAML document of every manifest file;
//! - [`typed`] deserialises one into its `k8s-openapi` type (chosen by `apiVersion` and
//!   `kind`; an unknown kind is an error) and [`lost_fields`] lists the fields the typed
//!   round trip dropped. `k8s-openapi` ignores unknown fields, so a misspelled field would
//!   otherwise pass silently; a dropped field is exactly such a field;
//! - [`serve_flags`] and [`registered_metrics`] read the flags of `fusion serve` and the
//!   metric names the server registers from their source files, so the tests can compare
//!   the manifests with what the server accepts and exports. (`fusion-cli` is a binary
//!   crate, so its clap definition cannot be linked here; reading the one struct that
//!   declares the flags is deterministic and needs no build of the binary.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Deserialize;
use serde_json::Value;

/// Why a manifest could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{path}: document {index}: not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The document's position in the file (0-based).
        index: usize,
        /// The parser's error.
        source: serde_yaml_ng::Error,
    },
    /// A document lacks `apiVersion` or `kind`, or names a type this check does not know.
    #[error("{0}: unknown or missing apiVersion/kind `{1}`")]
    UnknownKind(String, String),
    /// A document does not deserialise into its Kubernetes type.
    #[error("{0}: does not match its Kubernetes type: {1}")]
    Typed(String, serde_json::Error),
    /// A source file does not have the shape the reader expects.
    #[error("{0}")]
    Source(String),
}

/// One YAML document of a manifest file, as a JSON value.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file, relative to `deploy/k8s/`.
    pub file: String,
    /// The document's position in the file (0-based, empty documents counted).
    pub index: usize,
    /// The document.
    pub value: Value,
}

impl Document {
    /// `file#index`, for messages.
    pub fn name(&self) -> String {
        format!("{}#{}", self.file, self.index)
    }
}

/// A manifest document deserialised into its Kubernetes type.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// `v1` `Namespace`.
    Namespace(Namespace),
    /// `apps/v1` `StatefulSet`.
    StatefulSet(StatefulSet),
    /// `v1` `Service`.
    Service(Service),
    /// `v1` `Secret`.
    Secret(Secret),
    /// `v1` `ConfigMap`.
    ConfigMap(ConfigMap),
    /// `autoscaling/v2` `HorizontalPodAutoscaler`.
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    /// `policy/v1` `PodDisruptionBudget`.
    PodDisruptionBudget(PodDisruptionBudget),
    /// `networking.k8s.io/v1` `NetworkPolicy`.
    NetworkPolicy(NetworkPolicy),
}

/// The repository's root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The manifests' directory, `deploy/k8s/`.
pub fn k8s_dir() -> PathBuf {
    repo_root().join("deploy/k8s")
}

/// Reads a file as UTF-8 text.
pub fn read(path: &Path) -> Result<String, CheckError> {
    std::fs::read_to_string(path).map_err(|source| CheckError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Every non-empty YAML document of every `*.yaml`/`*.yml` file in `dir`, files in name
/// order.
pub fn load_documents(dir: &Path) -> Result<Vec<Document>, CheckError> {
    let io = |source| CheckError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = read(&path)?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (index, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(de).map_err(|source| CheckError::Yaml {
                path: path.clone(),
                index,
                source,
            })?;
            if !value.is_null() {
                docs.push(Document {
                    file: file.clone(),
                    index,
                    value,
                });
            }
        }
    }
    Ok(docs)
}

/// Deserialises a document into the Kubernetes type its `apiVersion` and `kind` name, and
/// returns it with the typed object serialised back to JSON (for [`lost_fields`]).
pub fn typed(doc: &Document) -> Result<(Object, Value), CheckError> {
    let api = doc.value.get("apiVersion").and_then(Value::as_str);
    let kind = doc.value.get("kind").and_then(Value::as_str);
    fn go<T>(doc: &Document, wrap: fn(T) -> Object) -> Result<(Object, Value), CheckError>
    where
        T: serde::de::DeserializeOwned + serde::Serialize,
    {
        let t: T = serde_json::from_value(doc.value.clone())
            .map_err(|e| CheckError::Typed(doc.name(), e))?;
        let back = serde_json::to_value(&t).map_err(|e| CheckError::Typed(doc.name(), e))?;
        Ok((wrap(t), back))
    }
    match (api, kind) {
        (Some("v1"), Some("Namespace")) => go(doc, Object::Namespace),
        (Some("apps/v1"), Some("StatefulSet")) => go(doc, Object::StatefulSet),
        (Some("v1"), Some("Service")) => go(doc, Object::Service),
        (Some("v1"), Some("Secret")) => go(doc, Object::Secret),
        (Some("v1"), Some("ConfigMap")) => go(doc, Object::ConfigMap),
        (Some("autoscaling/v2"), Some("HorizontalPodAutoscaler")) => {
            go(doc, Object::HorizontalPodAutoscaler)
        }
        (Some("policy/v1"), Some("PodDisruptionBudget")) => go(doc, Object::PodDisruptionBudget),
        (Some("networking.k8s.io/v1"), Some("NetworkPolicy")) => go(doc, Object::NetworkPolicy),
        _ => Err(CheckError::UnknownKind(
            doc.name(),
            format!("{}/{}", api.unwrap_or("?"), kind.unwrap_or("?")),
        )),
    }
}

/// The fields of `original` that `round_trip` lacks or holds with another value, as paths
/// (`spec.template.spec.containers[0].imagePullPolcy`). A field the typed struct does not
/// know (a misspelling, a field of another API version) is dropped by the round trip and
/// listed here.
pub fn lost_fields(original: &Value, round_trip: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(original, round_trip, String::new(), &mut out);
    out
}

fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(w) => walk(v, w, p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                walk(v, w, format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path} (value {a} became {b})")),
    }
}

/// A long flag of `fusion serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The Rust type of the field (`bool` for a switch).
    pub ty: String,
    /// Whether the flag takes a value (every non-`bool` field).
    pub takes_value: bool,
    /// Hidden from `--help` (`hide = true`).
    pub hidden: bool,
}

/// The long flags (without `--`) declared by the `Args` struct of `serve.rs`: each field with
/// an `#[arg(long ...)]` attribute, named by `long = "..."` or by the field in kebab case.
/// Fails if the struct is not found or has no such field.
pub fn serve_flags(serve_rs: &str) -> Result<BTreeMap<String, Flag>, CheckError> {
    let start = serve_rs
        .find("pub struct Args {")
        .ok_or_else(|| CheckError::Source("serve.rs: `pub struct Args {` not found".into()))?;
    let body = &serve_rs[start..];
    let end = body
        .find("\n}")
        .ok_or_else(|| CheckError::Source("serve.rs: end of `struct Args` not found".into()))?;
    let mut flags = BTreeMap::new();
    let mut attr: Option<String> = None;
    let mut open = false;
    for line in body[..end].lines().skip(1).map(str::trim) {
        if line.starts_with("//") || line.is_empty() {
            continue;
        }
        if open {
            if let Some(a) = attr.as_mut() {
                a.push_str(line);
            }
            open = !line.ends_with(")]");
            continue;
        }
        if line.starts_with("#[arg(") {
            attr = Some(line.to_owned());
            open = !line.ends_with(")]");
            continue;
        }
        if line.starts_with("#[") {
            // `#[command(flatten)]` and other attributes: the next field is no flag of ours.
            attr = None;
            continue;
        }
        let Some((name, ty)) = line.trim_end_matches(',').split_once(':') else {
            continue;
        };
        let name = name.trim().trim_start_matches("pub ").trim();
        let ty = ty.trim().to_owned();
        if let Some(a) = attr.take() {
            let inner = a
                .trim_start_matches("#[arg(")
                .trim_end_matches(")]")
                .to_owned();
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            let long = parts.iter().find_map(|p| {
                if *p == "long" {
                    Some(name.replace('_', "-"))
                } else {
                    p.strip_prefix("long = ")
                        .map(|s| s.trim_matches('"').to_owned())
                }
            });
            if let Some(long) = long {
                let hidden = parts.contains(&"hide = true");
                flags.insert(
                    long,
                    Flag {
                        takes_value: ty != "bool",
                        ty,
                        hidden,
                    },
                );
            }
        }
    }
    if flags.is_empty() {
        return Err(CheckError::Source(
            "serve.rs: no `#[arg(long ...)]` field in `struct Args`".into(),
        ));
    }
    Ok(flags)
}

/// A metric the server registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Its exported name without the type suffix (`fusion_sessions_active`; a counter is
    /// exported with `_total` appended).
    pub name: String,
    /// The constructor of the registered value (`Gauge`, `Counter`, `Family`, ...).
    pub kind: String,
}

/// The metrics `metrics.rs` registers: the registry's prefix (`Registry::with_prefix`) and
/// each `registry.register("name", "help", binding.clone())`, with the constructor of the
/// `let binding = ...` it registers.
pub fn registered_metrics(metrics_rs: &str) -> Result<Vec<Metric>, CheckError> {
    let prefix = after(metrics_rs, "Registry::with_prefix(\"")
        .and_then(|s| s.split('"').next())
        .ok_or_else(|| CheckError::Source("metrics.rs: no Registry::with_prefix".into()))?;
    let mut out = Vec::new();
    let mut rest = metrics_rs;
    while let Some(i) = rest.find("registry.register(") {
        rest = &rest[i + "registry.register(".len()..];
        let call = rest.split(");").next().unwrap_or("");
        // Arguments: "name", "help", binding.clone()
        let mut quoted = call.split('"');
        let name = quoted.nth(1).unwrap_or("");
        let binding = call
            .rsplit(',')
            .find(|s| !s.trim().is_empty())
            .unwrap_or("")
            .trim()
            .trim_end_matches(".clone()");
        let kind = after(metrics_rs, &format!("let {binding} = "))
            .or_else(|| after(metrics_rs, &format!("let {binding}: ")))
            .map(|s| {
                s.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default();
        if !name.is_empty() {
            out.push(Metric {
                name: format!("{prefix}_{name}"),
                kind,
            });
        }
    }
    if out.is_empty() {
        return Err(CheckError::Source(
            "metrics.rs: no registry.register(...) call".into(),
        ));
    }
    Ok(out)
}

fn after<'a>(s: &'a str, pat: &str) -> Option<&'a str> {
    s.find(pat).map(|i| &s[i + pat.len()..])
}
