//! Backend selection on the command line: `--backend NAME` for clients,
//! `--backend NAME[,NAME...]` for `fusion serve`, `fusion backends`, and the
//! rule that options belonging to one backend are refused for the others.

use fusion_engine::Backend;
use fusion_engine::backends::cheetah::Cheetah;
use fusion_engine::backends::cheetah::config::CheetahConfig;
use fusion_engine::backends::cryptflow2::{Cryptflow2, Cryptflow2Config};
use fusion_engine::backends::delphi::{Delphi, DelphiConfig};
use fusion_engine::backends::{self, AVAILABLE};
use fusion_engine::statsec::StatSecTarget;

use crate::common::{CliError, usage};

/// The backend options given on a command line that belong to `cheetah`
/// (`--ot`, `--he`, `--minimise-bytes`, `--ot-parallel`, `--engine`), by flag
/// name, and the configuration they make.
#[derive(Debug, Clone, Default)]
pub struct CheetahOptions {
    /// The flags given (for the error when another backend is chosen).
    pub given: Vec<&'static str>,
    /// The configuration.
    pub config: CheetahConfig,
}

impl CheetahOptions {
    /// Records that `flag` was given.
    pub fn given(mut self, flag: &'static str, present: bool) -> Self {
        if present {
            self.given.push(flag);
        }
        self
    }
}

/// Parses a comma-separated list of backend names (at least one, known,
/// distinct).
pub fn parse_names(list: &str) -> Result<Vec<String>, CliError> {
    let mut names: Vec<String> = Vec::new();
    for n in list.split(',').map(str::trim) {
        if n.is_empty() {
            return Err(usage(format!("empty backend name in `{list}`")));
        }
        backends::by_name(n).map_err(usage)?;
        if names.iter().any(|m| m == n) {
            return Err(usage(format!("backend `{n}` named twice")));
        }
        names.push(n.to_string());
    }
    if names.is_empty() {
        return Err(usage("name at least one backend"));
    }
    Ok(names)
}

/// Builds the backends `names` with the command line's backend options and
/// the flooding's statistical security `stat_sec` (every HE backend; a
/// client's is not used, it takes the server's announcement); options of a
/// backend that is not among them are refused.
pub fn build(
    names: &[String],
    cheetah: CheetahOptions,
    stat_sec: StatSecTarget,
) -> Result<Vec<Box<dyn Backend>>, CliError> {
    if !names.iter().any(|n| n == backends::cheetah::NAME) && !cheetah.given.is_empty() {
        return Err(usage(format!(
            "{} belong(s) to backend `cheetah`, not to {}",
            cheetah.given.join(", "),
            names.join(", ")
        )));
    }
    names
        .iter()
        .map(|n| -> Result<Box<dyn Backend>, CliError> {
            match n.as_str() {
                backends::cheetah::NAME => Ok(Box::new(Cheetah::new(CheetahConfig {
                    stat_sec,
                    ..cheetah.config.clone()
                }))),
                backends::delphi::NAME => Ok(Box::new(Delphi::new(DelphiConfig {
                    stat_sec,
                    ..DelphiConfig::default()
                }))),
                backends::cryptflow2::NAME => Ok(Box::new(Cryptflow2::new(Cryptflow2Config {
                    stat_sec,
                    ..Cryptflow2Config::default()
                }))),
                other => backends::by_name(other).map_err(usage),
            }
        })
        .collect()
}

/// The one backend a client runs.
pub fn build_one(name: &str, cheetah: CheetahOptions) -> Result<Box<dyn Backend>, CliError> {
    let names = parse_names(name)?;
    if names.len() != 1 {
        return Err(usage("a client runs exactly one backend"));
    }
    let mut built = build(&names, cheetah, StatSecTarget::default())?;
    built
        .pop()
        .ok_or_else(|| usage("a client runs exactly one backend"))
}

/// `fusion backends`: one line per available backend.
pub fn list() -> String {
    let width = AVAILABLE.iter().map(|b| b.name.len()).max().unwrap_or(0);
    AVAILABLE
        .iter()
        .map(|b| format!("{:<width$}  {}", b.name, b.summary))
        .collect::<Vec<_>>()
        .join("\n")
}
