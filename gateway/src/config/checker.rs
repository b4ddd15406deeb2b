//! What every section's validation shares: the error list with lines, value checks
//! used by many keys, and the record of files the config names (read later, by
//! [`super::files`]). Nothing here reads a file or the environment.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qaqpa_routing::SystemId;
use toml::Spanned;

use super::files::{FileKind, NamedFile, PemKind};
use super::ConfigError;

pub(super) struct Checker<'s> {
    source: &'s str,
    /// Relative paths in the config are taken from here.
    base: &'s Path,
    pub(super) errors: Vec<ConfigError>,
    /// Every file the config names, in the order named, for the files pass.
    pub(super) files: Vec<NamedFile>,
}

impl<'s> Checker<'s> {
    pub(super) fn new(source: &'s str, base: &'s Path) -> Self {
        Checker { source, base, errors: Vec::new(), files: Vec::new() }
    }

    /// The 1-based line a span starts on; `None` for an empty span (a default).
    pub(super) fn line(&self, span: Range<usize>) -> Option<usize> {
        if span.is_empty() {
            return None;
        }
        let upto = self.source.get(..span.start)?;
        Some(upto.bytes().filter(|&b| b == b'\n').count() + 1)
    }

    pub(super) fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(ConfigError { line, key: key.into(), message: message.into() });
    }

    /// A path relative to the config file's directory.
    pub(super) fn path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }

    /// A file the config names: resolved now, read and checked by the files pass,
    /// whose errors name `key` and the value's line.
    pub(super) fn file(&mut self, value: &Spanned<String>, key: impl Into<String>, kind: FileKind) -> PathBuf {
        let path = self.path(value.get_ref());
        let line = self.line(value.span());
        self.files.push(NamedFile { key: key.into(), line, path: path.clone(), kind });
        path
    }

    /// A file that must hold PEM of `kind`.
    pub(super) fn pem_file(&mut self, value: &Spanned<String>, key: impl Into<String>, kind: PemKind) -> PathBuf {
        self.file(value, key, FileKind::Pem(kind))
    }

    /// A duration longer than zero, like "30s"; `None` (reported) if it is not one.
    pub(super) fn duration_of(&mut self, value: &Spanned<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.error(value.span(), key, "must be longer than zero");
                None
            }
            Err(e) => {
                self.error(value.span(), key, format!("not a duration like \"30s\" or \"500ms\": {e}"));
                None
            }
        }
    }

    /// An optional duration: its default when absent (or wrong, reported).
    pub(super) fn duration(&mut self, value: Option<&Spanned<String>>, default: Duration, key: &str) -> Duration {
        value.and_then(|v| self.duration_of(v, key)).unwrap_or(default)
    }

    /// One of a fixed set of words; absent, `default`. An unknown word is an error
    /// naming the options.
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(value) = value else { return default };
        match options.iter().find(|(word, _)| *word == value.get_ref().as_str()) {
            Some((_, chosen)) => *chosen,
            None => {
                let words: Vec<String> = options.iter().map(|(w, _)| format!("{w:?}")).collect();
                let (last, rest) = words.split_last().expect("options are not empty");
                let message = format!("unknown {:?}; use {} or {last}", value.get_ref(), rest.join(", "));
                self.error(value.span(), key, message);
                default
            }
        }
    }

    /// A count that must not be zero, or its default when absent (or zero, reported
    /// with `message`).
    pub(super) fn nonzero<T: Copy + Default + PartialEq>(
        &mut self,
        value: Option<&Spanned<T>>,
        default: T,
        key: &str,
        message: &str,
    ) -> T {
        match value {
            None => default,
            Some(v) if *v.get_ref() == T::default() => {
                self.error(v.span(), key, message);
                default
            }
            Some(v) => *v.get_ref(),
        }
    }

    /// A count that must be at least 1, or its default when absent.
    pub(super) fn positive(&mut self, value: Option<&Spanned<u32>>, default: u32, key: &str) -> u32 {
        self.nonzero(value, default, key, "must be at least 1")
    }

    pub(super) fn system_id(&mut self, value: &Spanned<String>, key: &str) -> Option<SystemId> {
        SystemId::parse(value.get_ref())
            .map_err(|e| self.error(value.span(), key, format!("bad system id {:?}: {e}", value.get_ref())))
            .ok()
    }

    /// The systems of a list (an access list, a topic's subscribers), each one that
    /// is malformed or not registered reported and left out.
    pub(super) fn registered_systems(
        &mut self,
        list: &[Spanned<String>],
        key: &str,
        known: &HashSet<SystemId>,
    ) -> Vec<SystemId> {
        let mut systems = Vec::new();
        for value in list {
            let Some(id) = self.system_id(value, key) else { continue };
            if known.contains(&id) {
                systems.push(id);
            } else {
                self.error(value.span(), key, format!("system {id} is not registered in a [[system]] table"));
            }
        }
        systems
    }
}
