//! `--cheat MODE`: parsed here and built into a server behaviour hook
//! ([`fusion_engine::behaviour`]); the cheating behaviours themselves are
//! [`fusion_engine::cheats`]. The production server has no cheat branches.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use fusion_core::ring::FixedPoint;
use fusion_engine::ServedModel;
use fusion_engine::behaviour::{Honest, ServerBehaviour};
use fusion_engine::cheats::{LowQuality, RandomOutputs, Tamper, Targeted};

use crate::common::{CliError, usage};

/// A cheat mode as given on a command line (before loading models):
/// `honest`, `low-quality[:DIR]`, `tamper:K[:CLASS]`, `random` or
/// `targeted:A[:B]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CheatMode {
    /// Honest.
    #[default]
    Honest,
    /// Serve a weaker model: the given directory, or the model directory with
    /// `-weak` appended.
    LowQuality(Option<PathBuf>),
    /// Corrupt `positions` random outputs per batch towards class `target` (default 0).
    Tamper {
        /// `K`.
        positions: usize,
        /// The forced class.
        target: usize,
    },
    /// Random outputs.
    Random,
    /// Every sample the honest model labels `from` is labelled `to` (default
    /// `(from + 1) mod classes`): a model change.
    Targeted {
        /// `A`.
        from: usize,
        /// `B`.
        to: Option<usize>,
    },
}

impl FromStr for CheatMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (head, rest) = match s.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        };
        match (head.to_ascii_lowercase().as_str(), rest) {
            ("honest" | "none", None) => Ok(CheatMode::Honest),
            ("low-quality", None) => Ok(CheatMode::LowQuality(None)),
            ("low-quality", Some(dir)) if !dir.is_empty() => {
                Ok(CheatMode::LowQuality(Some(PathBuf::from(dir))))
            }
            ("random", None) => Ok(CheatMode::Random),
            ("tamper", Some(r)) => {
                let (k, target) = match r.split_once(':') {
                    Some((k, t)) => (k, Some(t)),
                    None => (r, None),
                };
                let positions: usize = k
                    .parse()
                    .ok()
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| format!("tamper:K needs an integer K >= 1, got `{k}`"))?;
                let target = match target {
                    Some(t) => t
                        .parse()
                        .map_err(|_| format!("tamper:K:CLASS needs a class index, got `{t}`"))?,
                    None => 0,
                };
                Ok(CheatMode::Tamper { positions, target })
            }
            ("tamper", None) => Err("tamper needs a count: tamper:K (e.g. tamper:10)".into()),
            ("targeted", Some(r)) => {
                let class = |t: &str| {
                    t.parse::<usize>()
                        .map_err(|_| format!("targeted:A[:B] needs class indices, got `{t}`"))
                };
                let (from, to) = match r.split_once(':') {
                    Some((a, b)) => (class(a)?, Some(class(b)?)),
                    None => (class(r)?, None),
                };
                Ok(CheatMode::Targeted { from, to })
            }
            ("targeted", None) => {
                Err("targeted needs a class: targeted:A[:B] (e.g. targeted:3:5)".into())
            }
            _ => Err(format!(
                "unknown cheat mode `{s}` (honest, low-quality[:DIR], tamper:K[:CLASS], random, \
                 targeted:A[:B])"
            )),
        }
    }
}

impl CheatMode {
    /// Whether this is the honest mode.
    pub fn is_honest(&self) -> bool {
        matches!(self, CheatMode::Honest)
    }

    /// Builds the server behaviour for the model `announced` from the
    /// directory `model_dir` (loading the weak model for `low-quality`) with
    /// the fixed point `fixed`.
    pub fn resolve(
        &self,
        model_dir: &Path,
        fixed: FixedPoint,
        announced: &ServedModel,
    ) -> Result<Arc<dyn ServerBehaviour>, CliError> {
        Ok(match self {
            CheatMode::Honest => Arc::new(Honest),
            CheatMode::Random => Arc::new(RandomOutputs),
            CheatMode::Targeted { from, to } => {
                let model = fusion_nn::Model::load(model_dir).map_err(usage)?;
                let to = to.unwrap_or((from + 1) % announced.classes.max(1));
                Arc::new(Targeted::new(&model, fixed, *from, to).map_err(usage)?)
            }
            CheatMode::Tamper { positions, target } => {
                Arc::new(Tamper::new(*positions, *target, announced.classes).map_err(usage)?)
            }
            CheatMode::LowQuality(dir) => {
                let dir = match dir {
                    Some(d) => d.clone(),
                    None => {
                        let base = model_dir.components().as_path();
                        let name = base
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        base.with_file_name(format!("{name}-weak"))
                    }
                };
                if !dir.is_dir() {
                    return Err(usage(format!(
                        "low-quality: no weaker model at {} (give one with low-quality:DIR)",
                        dir.display()
                    )));
                }
                let weak = ServedModel::load(&dir, fixed).map_err(usage)?;
                Arc::new(LowQuality::new(weak, announced).map_err(usage)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targeted_parses_with_and_without_the_destination_class() {
        assert_eq!(
            "targeted:3".parse::<CheatMode>(),
            Ok(CheatMode::Targeted { from: 3, to: None })
        );
        assert_eq!(
            "targeted:3:5".parse::<CheatMode>(),
            Ok(CheatMode::Targeted {
                from: 3,
                to: Some(5)
            })
        );
    }

    #[test]
    fn malformed_targeted_modes_are_refused_with_the_expected_form() {
        for bad in [
            "targeted",
            "targeted:",
            "targeted:x",
            "targeted:1:y",
            "targeted:1:2:3",
        ] {
            let err = bad.parse::<CheatMode>().expect_err(bad);
            assert!(err.contains("targeted"), "{bad}: {err}");
        }
    }
}
