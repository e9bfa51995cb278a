//! The Kubernetes manifests under `deploy/k8s/` deserialise into the Kubernetes API types
//! without unknown fields, and agree with what `fusion serve` accepts and exports: its flags
//! (`crates/fusion-cli/src/serve.rs`), its metric names (`crates/fusion-cli/src/metrics.rs`),
//! its readiness path and ports.

use std::collections::{BTreeMap, BTreeSet};

use fusion_deploy_check::{
    Document, Flag, Object, k8s_dir, load_documents, lost_fields, read, registered_metrics,
    repo_root, serve_flags, typed,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn docs() -> Vec<Document> {
    load_documents(&k8s_dir()).expect("manifests load")
}

fn objects() -> Vec<(String, Object)> {
    docs()
        .iter()
        .map(|d| (d.name(), typed(d).expect("typed").0))
        .collect()
}

fn statefulset() -> StatefulSet {
    let mut found: Vec<StatefulSet> = objects()
        .into_iter()
        .filter_map(|(_, o)| match o {
            Object::StatefulSet(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "exactly one StatefulSet");
    found.remove(0)
}

fn services() -> Vec<Service> {
    objects()
        .into_iter()
        .filter_map(|(_, o)| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn pod_spec(s: &StatefulSet) -> PodSpec {
    s.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod spec")
}

fn serve_container(s: &StatefulSet) -> Container {
    let spec = pod_spec(s);
    let serve: Vec<&Container> = spec
        .containers
        .iter()
        .filter(|c| {
            c.command
                .as_deref()
                .is_some_and(|c| c.ends_with(&["serve".to_owned()]))
        })
        .collect();
    assert_eq!(serve.len(), 1, "one container runs `fusion serve`");
    serve[0].clone()
}

fn flags() -> BTreeMap<String, Flag> {
    let src = read(&repo_root().join("crates/fusion-cli/src/serve.rs")).expect("serve.rs");
    serve_flags(&src).expect("serve flags")
}

/// The container's `fusion serve` arguments as flag -> value ("" for a switch), after
/// checking each against the flags `serve.rs` declares.
fn serve_args(c: &Container) -> BTreeMap<String, String> {
    let flags = flags();
    let args = c.args.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            panic!("`{a}`: fusion serve takes no positional argument");
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let Some(decl) = flags.get(name) else {
            panic!("--{name}: not a flag of `fusion serve` (serve.rs declares {flags:?})");
        };
        assert!(!decl.hidden, "--{name} is a hidden flag");
        let value = if decl.takes_value {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .filter(|v| !v.starts_with("--"))
                    .unwrap_or_else(|| panic!("--{name} needs a value"))
                    .clone(),
            }
        } else {
            assert!(inline.is_none(), "--{name} is a switch and takes no value");
            String::new()
        };
        let ty = decl.ty.trim_start_matches("Option<").trim_end_matches('>');
        let parses = match ty {
            "u32" => value.parse::<u32>().is_ok(),
            "u64" => value.parse::<u64>().is_ok(),
            "usize" => value.parse::<usize>().is_ok(),
            "f64" => value.parse::<f64>().is_ok(),
            "SocketAddr" => value.parse::<std::net::SocketAddr>().is_ok(),
            _ => true,
        };
        assert!(parses, "--{name} {value}: not a {ty}");
        assert!(
            out.insert(name.to_owned(), value).is_none(),
            "--{name} given twice"
        );
    }
    out
}

fn port_of(addr: &str) -> i32 {
    addr.parse::<std::net::SocketAddr>()
        .expect("socket address")
        .port()
        .into()
}

/// The containerPort of the named port of `c`, with its protocol.
fn container_port(c: &Container, name: &str) -> (i32, String) {
    let p = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("container port `{name}`"));
    (
        p.container_port,
        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
    )
}

fn resolve(c: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => container_port(c, name).0,
    }
}

#[test]
fn every_manifest_deserialises_into_its_kubernetes_type_without_unknown_or_lost_fields() {
    let docs = docs();
    let files: BTreeSet<&str> = docs.iter().map(|d| d.file.as_str()).collect();
    for expected in [
        "statefulset.yaml",
        "service.yaml",
        "service-headless.yaml",
        "secrets.template.yaml",
        "hpa.yaml",
        "prometheus-adapter-config.yaml",
    ] {
        assert!(files.contains(expected), "{expected} missing in deploy/k8s");
    }
    for doc in &docs {
        let (_, back) = typed(doc).unwrap_or_else(|e| panic!("{e}"));
        let lost = lost_fields(&doc.value, &back);
        assert!(
            lost.is_empty(),
            "{}: fields unknown to the Kubernetes type (misspelled?): {lost:?}",
            doc.name()
        );
    }
}

#[test]
fn the_round_trip_check_catches_a_misspelled_field_and_an_unknown_kind() {
    let doc = docs()
        .into_iter()
        .find(|d| d.file == "statefulset.yaml")
        .expect("statefulset.yaml");
    let mut bad = doc.clone();
    let container = bad.value["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container object");
    let policy = container
        .remove("imagePullPolicy")
        .expect("imagePullPolicy set");
    container.insert("imagePullPolcy".into(), policy);
    let (_, back) = typed(&bad).expect("unknown fields are ignored by the typed struct");
    let lost = lost_fields(&bad.value, &back);
    assert_eq!(
        lost,
        ["spec.template.spec.containers[0].imagePullPolcy"],
        "{lost:?}"
    );

    let mut other = doc;
    other.value["kind"] = "Deploymnet".into();
    assert!(typed(&other).is_err());
}

#[test]
fn the_serve_flag_reader_finds_the_flags_of_serve_rs() {
    let flags = flags();
    for f in [
        "model",
        "listen",
        "cert",
        "key",
        "client-ca",
        "metrics",
        "max-sessions",
        "shutdown-grace",
        "quota",
        "quota-db",
        "log-format",
    ] {
        assert!(
            flags.get(f).is_some_and(|f| f.takes_value),
            "--{f}: {flags:?}"
        );
    }
    assert!(!flags["ot-parallel"].takes_value);
    // `--seed` comes from a flattened struct (common.rs), refused by serve: not accepted here.
    assert!(!flags.contains_key("seed") && !flags.contains_key("no-seed"));
}

#[test]
fn container_args_name_only_flags_fusion_serve_accepts_and_always_require_client_certificates() {
    let s = statefulset();
    let c = serve_container(&s);
    let args = serve_args(&c);
    for required in ["model", "listen", "cert", "key", "client-ca", "metrics"] {
        assert!(
            args.contains_key(required),
            "--{required} missing: {args:?}"
        );
    }
    if args.contains_key("quota") {
        assert!(args.contains_key("quota-db"), "--quota without --quota-db");
    }
    // The model ships in the image (deploy/Dockerfile copies data/models to /opt/fusion/models).
    let model = args["model"]
        .strip_prefix("/opt/fusion/models/")
        .expect("a model of the image");
    assert!(
        repo_root().join("data/models").join(model).is_dir(),
        "{model} is not in data/models"
    );

    // Files named by the arguments come from the mounted volumes.
    let spec = pod_spec(&s);
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let volumes = spec.volumes.clone().unwrap_or_default();
    let mut claims: Vec<String> = s
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.metadata.name)
        .collect();
    claims.sort();
    for (flag, secret) in [
        ("cert", Some("fusion-server-tls")),
        ("key", Some("fusion-server-tls")),
        ("client-ca", Some("fusion-client-ca")),
        ("quota-db", None),
    ] {
        let Some(path) = args.get(flag) else { continue };
        let (dir, file) = path.rsplit_once('/').expect("absolute path");
        let mount = mounts
            .iter()
            .find(|m| m.mount_path == dir)
            .unwrap_or_else(|| panic!("--{flag} {path}: no volume mounted at {dir}"));
        match secret {
            Some(secret) => {
                let v = volumes
                    .iter()
                    .find(|v| v.name == mount.name)
                    .and_then(|v| v.secret.clone())
                    .unwrap_or_else(|| panic!("--{flag}: volume {} is no secret", mount.name));
                assert_eq!(v.secret_name.as_deref(), Some(secret), "--{flag}");
                assert!(
                    v.items.iter().flatten().any(|i| i.path == file),
                    "--{flag}: secret {secret} does not project {file}"
                );
            }
            None => assert!(
                claims.contains(&mount.name),
                "--{flag}: {dir} is not a per-pod volume ({claims:?})"
            ),
        }
    }
}

#[test]
fn probes_check_readyz_and_metrics_on_the_metrics_port() {
    let c = serve_container(&statefulset());
    let args = serve_args(&c);
    let metrics_port = port_of(&args["metrics"]);
    assert!(
        args["metrics"].starts_with("0.0.0.0:"),
        "kubelet must reach it"
    );
    let ready = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.clone())
        .expect("readiness httpGet");
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    assert_eq!(resolve(&c, &ready.port), metrics_port);
    for probe in [&c.liveness_probe, &c.startup_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.clone())
            .expect("httpGet probe");
        assert_eq!(get.path.as_deref(), Some("/metrics"));
        assert_eq!(resolve(&c, &get.port), metrics_port);
    }
    let (port, protocol) = container_port(&c, "metrics");
    assert_eq!((port, protocol.as_str()), (metrics_port, "TCP"));
}

#[test]
fn termination_grace_exceeds_the_shutdown_grace() {
    let s = statefulset();
    let args = serve_args(&serve_container(&s));
    let grace: i64 = args
        .get("shutdown-grace")
        .map_or(30, |g| g.parse().expect("seconds"));
    let termination = pod_spec(&s)
        .termination_grace_period_seconds
        .expect("terminationGracePeriodSeconds");
    assert!(
        termination > grace,
        "terminationGracePeriodSeconds {termination} <= --shutdown-grace {grace}"
    );
}

#[test]
fn services_carry_quic_over_udp_to_the_listen_port_and_the_headless_one_governs_the_pods() {
    let s = statefulset();
    let c = serve_container(&s);
    let args = serve_args(&c);
    let quic = port_of(&args["listen"]);
    assert_eq!(container_port(&c, "quic"), (quic, "UDP".to_owned()));
    let pod_labels = s
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.clone())
        .and_then(|m| m.labels)
        .expect("pod labels");
    let services = services();
    let headless: Vec<&Service> = services
        .iter()
        .filter(|svc| svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None"))
        .collect();
    assert_eq!(headless.len(), 1, "one headless Service");
    assert_eq!(
        headless[0].metadata.name,
        s.spec.as_ref().and_then(|s| s.service_name.clone()),
        "the StatefulSet's serviceName is the headless Service"
    );
    let public: Vec<&Service> = services
        .iter()
        .filter(|svc| svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) != Some("None"))
        .collect();
    assert_eq!(public.len(), 1, "one public Service");
    for svc in services.iter() {
        let spec = svc.spec.as_ref().expect("spec");
        for (k, v) in spec.selector.iter().flatten() {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "selector {k}={v} misses the pods"
            );
        }
        let ports = spec.ports.clone().unwrap_or_default();
        let quic_ports: Vec<_> = ports
            .iter()
            .filter(|p| p.target_port.as_ref().map(|t| resolve(&c, t)) == Some(quic))
            .collect();
        assert_eq!(
            quic_ports.len(),
            1,
            "{:?}: one QUIC port",
            svc.metadata.name
        );
        assert_eq!(quic_ports[0].protocol.as_deref(), Some("UDP"));
    }
    let spec = public[0].spec.as_ref().expect("spec");
    assert!(
        spec.ports
            .iter()
            .flatten()
            .all(|p| p.protocol.as_deref() == Some("UDP")),
        "the public Service carries QUIC only"
    );
    assert_eq!(spec.session_affinity.as_deref(), Some("ClientIP"));
}

#[test]
fn hpa_scales_the_statefulset_on_a_per_pod_gauge_the_server_exports_via_the_adapter_rule() {
    let s = statefulset();
    let objects = objects();
    let hpas: Vec<&HorizontalPodAutoscaler> = objects
        .iter()
        .filter_map(|(_, o)| match o {
            Object::HorizontalPodAutoscaler(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(hpas.len(), 1);
    let spec = hpas[0].spec.as_ref().expect("spec");
    assert_eq!(spec.scale_target_ref.kind, "StatefulSet");
    assert_eq!(
        spec.scale_target_ref.api_version.as_deref(),
        Some("apps/v1")
    );
    assert_eq!(Some(&spec.scale_target_ref.name), s.metadata.name.as_ref());
    assert_eq!(hpas[0].metadata.namespace, s.metadata.namespace);

    let metrics = spec.metrics.clone().unwrap_or_default();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].type_, "Pods");
    let pods = metrics[0].pods.as_ref().expect("pods metric");
    let name = &pods.metric.name;
    assert_eq!(pods.target.type_, "AverageValue");

    let src = read(&repo_root().join("crates/fusion-cli/src/metrics.rs")).expect("metrics.rs");
    let exported = registered_metrics(&src).expect("metrics");
    let m = exported
        .iter()
        .find(|m| &m.name == name)
        .unwrap_or_else(|| panic!("{name} is not exported by the server: {exported:?}"));
    assert_eq!(
        m.kind, "Gauge",
        "{name}: an HPA on a counter scales on history"
    );

    // The prometheus-adapter rule names the same series and serves it under that name.
    let adapter = objects
        .iter()
        .find_map(|(_, o)| match o {
            Object::ConfigMap(c)
                if c.metadata.name.as_deref() == Some("prometheus-adapter-fusion") =>
            {
                c.data.clone()
            }
            _ => None,
        })
        .expect("prometheus-adapter ConfigMap");
    let config: serde_json::Value =
        serde_yaml_ng::from_str(&adapter["config.yaml"]).expect("adapter config is YAML");
    let rules = config["rules"].as_array().expect("rules");
    let rule = rules
        .iter()
        .find(|r| r["name"]["as"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no adapter rule serves {name}"));
    let series = rule["seriesQuery"].as_str().expect("seriesQuery");
    assert!(series.starts_with(&format!("{name}{{")), "{series}");
    assert_eq!(rule["resources"]["overrides"]["pod"]["resource"], "pod");
    assert_eq!(
        rule["resources"]["overrides"]["namespace"]["resource"],
        "namespace"
    );
    assert!(rule["metricsQuery"].as_str().is_some());
}

#[test]
fn secrets_are_templates_without_key_material_and_match_the_mounted_names() {
    let s = statefulset();
    let secrets: Vec<Secret> = objects()
        .into_iter()
        .filter_map(|(_, o)| match o {
            Object::Secret(s) => Some(s),
            _ => None,
        })
        .collect();
    let text = read(&k8s_dir().join("secrets.template.yaml")).expect("template");
    assert!(
        !text.contains("-----BEGIN"),
        "no PEM material in the template"
    );
    for secret in &secrets {
        assert!(
            secret.data.is_none(),
            "templates use placeholders in stringData"
        );
        for (k, v) in secret.string_data.iter().flatten() {
            assert!(v.starts_with("REPLACE"), "{k}: not a placeholder");
            assert!(!k.contains("ca-key"), "the CA's private key stays out");
        }
    }
    let names: BTreeSet<String> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    for v in pod_spec(&s).volumes.iter().flatten() {
        if let Some(sv) = &v.secret {
            let name = sv.secret_name.clone().expect("secretName");
            assert!(names.contains(&name), "no template for secret {name}");
            let secret = secrets
                .iter()
                .find(|s| s.metadata.name.as_ref() == Some(&name))
                .expect("secret");
            let keys = secret.string_data.clone().unwrap_or_default();
            for item in sv.items.iter().flatten() {
                assert!(keys.contains_key(&item.key), "{name} lacks {}", item.key);
            }
        }
    }
}

#[test]
fn the_pod_runs_as_non_root_with_resources_and_every_object_shares_the_namespace() {
    let s = statefulset();
    let spec = pod_spec(&s);
    let pod = spec.security_context.clone().expect("pod securityContext");
    assert_eq!(pod.run_as_non_root, Some(true));
    assert!(pod.run_as_user.is_some_and(|u| u > 0));
    let c = serve_container(&s);
    let sc = c
        .security_context
        .clone()
        .expect("container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let res = c.resources.clone().expect("resources");
    for key in ["cpu", "memory"] {
        assert!(res.requests.as_ref().is_some_and(|r| r.contains_key(key)));
        assert!(res.limits.as_ref().is_some_and(|r| r.contains_key(key)));
    }
    let ns = s.metadata.namespace.clone().expect("namespace");
    for (name, o) in objects() {
        let meta = match &o {
            Object::Namespace(n) => {
                assert_eq!(n.metadata.name.as_ref(), Some(&ns));
                continue;
            }
            // The adapter's rule lives with prometheus-adapter.
            Object::ConfigMap(_) => continue,
            Object::StatefulSet(x) => &x.metadata,
            Object::Service(x) => &x.metadata,
            Object::Secret(x) => &x.metadata,
            Object::HorizontalPodAutoscaler(x) => &x.metadata,
            Object::PodDisruptionBudget(x) => &x.metadata,
            Object::NetworkPolicy(x) => &x.metadata,
        };
        assert_eq!(meta.namespace.as_ref(), Some(&ns), "{name}");
    }
}
