//! The optional TOML file of `leanfarm serve` (`--config`), and how it
//! joins flags and `LEAN_FARM_*` variables: a setting given by flag or
//! variable wins, then the file's, then the default. Defaults are never
//! written here: a setting the file leaves out takes its serde default,
//! the same function clap's help shows.
//!
//! The join is generic: the file's table, with every setting clap saw on
//! the command line or in the environment written over it, is read back
//! into `ServeArgs`. This module must never name an individual setting.

use super::server::ServeArgs;
use crate::CliError;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use std::path::Path;

/// The settings clap took from a flag or a `LEAN_FARM_*` variable (not
/// from a default), by id: the settings the file may not override.
pub fn explicit_settings(matches: &ArgMatches) -> Vec<String> {
    matches
        .ids()
        .map(|id| id.as_str())
        .filter(|id| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(str::to_string)
        .collect()
}

/// `args` (from flags, variables and defaults) with what `explicit` does
/// not name taken from the config file, if there is one.
pub fn with_file(args: ServeArgs, explicit: &[String]) -> Result<ServeArgs, CliError> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let mut table = read_table(&path)?;
    let given = toml::Value::try_from(&args)
        .map_err(|error| CliError::Config(format!("cannot merge settings: {error}")))?;
    let toml::Value::Table(given) = given else {
        unreachable!("settings serialise to a table");
    };
    for (key, value) in given {
        if explicit.contains(&key) {
            table.insert(key, value);
        }
    }
    let mut merged: ServeArgs = table.try_into().map_err(|error: toml::de::Error| {
        CliError::Config(format!("cannot merge settings: {error}"))
    })?;
    merged.config = args.config;
    Ok(merged)
}

/// The file's settings, each known by name and of the right type.
fn read_table(path: &Path) -> Result<toml::Table, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::Config(format!("cannot read {}: {error}", path.display())))?;
    let in_file = |error: String| CliError::Config(format!("{}: {error}", path.display()));
    let table: toml::Table = toml::from_str(&text).map_err(|e| in_file(e.to_string()))?;
    // serde's deny_unknown_fields does not see through `flatten`: the
    // settings a file may hold are the flags' ids.
    let command = <ServeArgs as Args>::augment_args(clap::Command::new("serve"));
    let known: Vec<&str> = command
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| *id != "config")
        .collect();
    // `[prove]` is the one table: the model routes, which no flag can hold.
    let is_known = |key: &str| known.contains(&key) || key == "prove";
    if let Some(unknown) = table.keys().find(|key| !is_known(key.as_str())) {
        return Err(in_file(format!(
            "unknown setting `{unknown}`; the settings are {}",
            known.join(", ")
        )));
    }
    if let Err(error) = table.clone().try_into::<ServeArgs>() {
        // Through `flatten` the error lost its key: find the setting that
        // fails alone (every other setting takes its default).
        let culprit = table.iter().find(|(key, value)| {
            let alone = toml::Table::from_iter([(key.to_string(), (*value).clone())]);
            alone.try_into::<ServeArgs>().is_err()
        });
        return Err(match culprit {
            Some((key, _)) => in_file(format!("`{key}`: {error}")),
            None => in_file(error.to_string()),
        });
    }
    Ok(table)
}
