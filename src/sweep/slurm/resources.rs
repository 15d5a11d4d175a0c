//! What each array task asks Slurm for: the `slurm` section of experiment
//! files ([`SlurmSettings`]), the `--partition`/`--time`/`--cpus-per-task`/
//! `--gpus-per-task` flags ([`ResourceFlags`]), and the one set of
//! resources of a job array that comes out of both ([`Resources`]).
//!
//! Data flow: [`Resources::merge`] takes every swept file's section (a job
//! array asks the same of every task, so the largest time, CPU and GPU
//! counts win and partitions must agree), gives a `device: Cuda` file one
//! GPU per task unless told otherwise, then lets the flags override.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SlurmError;
use crate::error::ConfigError;

/// The optional `slurm` section of an experiment file: what a Slurm array
/// task running it needs (flags of `sweep --launcher slurm` override it).
///
/// ```ron
/// slurm: Some((partition: "gpu", time: "2:00:00", cpus_per_task: 4, gpus_per_task: 1, extra: ["--mem=8G"])),
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// Partition (`--partition`); default: the cluster's default partition.
    #[serde(default)]
    pub partition: Option<String>,
    /// Time limit per task in a Slurm format (`MM`, `MM:SS`, `HH:MM:SS`,
    /// `D-HH`, `D-HH:MM`, `D-HH:MM:SS`); default: the partition's.
    #[serde(default)]
    pub time: Option<String>,
    /// CPUs per task (default 1; the run's thread pool uses them).
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// GPUs per task (default 1 for `device: Cuda`, else 0).
    #[serde(default)]
    pub gpus_per_task: Option<u32>,
    /// Further `sbatch` options, one per entry, e.g. `"--mem=8G"`, `"--account=lab"`.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl SlurmSettings {
    /// Checks the settings (the time format, counts, option lines).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = &self.partition {
            check_word(p).map_err(|m| ConfigError::new("slurm.partition", m))?;
        }
        if let Some(t) = &self.time {
            SlurmTime::parse(t).map_err(|m| ConfigError::new("slurm.time", m))?;
        }
        if self.cpus_per_task == Some(0) {
            return Err(ConfigError::new(
                "slurm.cpus_per_task",
                "must be at least 1",
            ));
        }
        for line in &self.extra {
            check_option(line).map_err(|m| ConfigError::new("slurm.extra", m))?;
        }
        Ok(())
    }
}

/// A partition name or similar single word.
fn check_word(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("expected one word without spaces, got {s:?}"));
    }
    Ok(())
}

/// An extra `sbatch` option: one line starting with `-`.
fn check_option(s: &str) -> Result<(), String> {
    if !s.starts_with('-') || s.contains(['\n', '\r']) {
        return Err(format!(
            "expected one sbatch option such as \"--mem=8G\", got {s:?}"
        ));
    }
    Ok(())
}

/// A Slurm time limit, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlurmTime(pub u64);

impl SlurmTime {
    /// Parses the formats `sbatch --time` takes: `MM`, `MM:SS`, `HH:MM:SS`,
    /// `D-HH`, `D-HH:MM`, `D-HH:MM:SS`. The error says what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, e.g. 90 or 1:30:00 or 2-00:00:00)"
            )
        };
        let num = |p: &str| -> Result<u64, String> {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<u64>().map_err(|_| bad())
        };
        let (days, rest) = match s.split_once('-') {
            Some((d, r)) => (Some(num(d)?), r),
            None => (None, s),
        };
        let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_, _>>()?;
        let secs = match (days, parts.as_slice()) {
            (None, [m]) => m * 60,
            (None, [m, s]) => m * 60 + s,
            (None, [h, m, s]) => h * 3600 + m * 60 + s,
            (Some(d), [h]) => d * 86400 + h * 3600,
            (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
            (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
            _ => return Err(bad()),
        };
        if secs == 0 {
            return Err(format!("{s:?} is no time at all; give a positive limit"));
        }
        Ok(Self(secs))
    }

    /// The limit as `D-HH:MM:SS`, which every Slurm version reads.
    pub fn to_slurm(self) -> String {
        let s = self.0;
        format!(
            "{}-{:02}:{:02}:{:02}",
            s / 86400,
            (s % 86400) / 3600,
            (s % 3600) / 60,
            s % 60
        )
    }
}

/// Resource flags given on the command line (they override the files).
#[derive(Debug, Clone, Default)]
pub struct ResourceFlags {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time`, as typed.
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--gpus-per-task`.
    pub gpus_per_task: Option<u32>,
}

/// What every task of one job array asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Partition (`None`: the cluster's default).
    pub partition: Option<String>,
    /// Time limit per task (`None`: the partition's).
    pub time: Option<SlurmTime>,
    /// CPUs per task.
    pub cpus_per_task: u32,
    /// GPUs per task (0: none requested).
    pub gpus_per_task: u32,
    /// Further `sbatch` options, in the order first given.
    pub extra: Vec<String>,
}

/// One swept file as the resources see it.
#[derive(Debug, Clone)]
pub struct FileNeeds<'a> {
    /// The experiment file (named in errors).
    pub path: &'a Path,
    /// Its `slurm` section.
    pub settings: Option<&'a SlurmSettings>,
    /// Whether it computes on CUDA (`device: Cuda`).
    pub cuda: bool,
}

impl Resources {
    /// The resources of a job array running all `files`: the largest time,
    /// CPU and GPU counts of their `slurm` sections, one GPU for a
    /// `device: Cuda` file without `gpus_per_task`, their extra options
    /// (deduplicated), then the flags on top.
    ///
    /// # Errors
    /// Two files naming different partitions (a job array has one), a bad
    /// `--time`, `--cpus-per-task 0` or `--partition`, or a bad section.
    pub fn merge(files: &[FileNeeds<'_>], flags: &ResourceFlags) -> Result<Self, SlurmError> {
        let mut r = Resources {
            partition: None,
            time: None,
            cpus_per_task: 1,
            gpus_per_task: 0,
            extra: Vec::new(),
        };
        let mut partition_from: Option<PathBuf> = None;
        for f in files {
            let s = f.settings.cloned().unwrap_or_default();
            let in_file = |field: &str, m: String| SlurmError::Setting {
                what: format!("{}: slurm.{field}", f.path.display()),
                message: m,
            };
            if let Some(p) = &s.partition {
                check_word(p).map_err(|m| in_file("partition", m))?;
                match (&r.partition, &partition_from) {
                    (Some(q), Some(other)) if q != p => {
                        return Err(SlurmError::PartitionConflict {
                            first: other.clone(),
                            first_partition: q.clone(),
                            second: f.path.to_path_buf(),
                            second_partition: p.clone(),
                        })
                    }
                    _ => {
                        r.partition = Some(p.clone());
                        partition_from = Some(f.path.to_path_buf());
                    }
                }
            }
            if let Some(t) = &s.time {
                let t = SlurmTime::parse(t).map_err(|m| in_file("time", m))?;
                r.time = r.time.max(Some(t));
            }
            if let Some(c) = s.cpus_per_task {
                if c == 0 {
                    return Err(in_file("cpus_per_task", "must be at least 1".into()));
                }
                r.cpus_per_task = r.cpus_per_task.max(c);
            }
            let gpus = s.gpus_per_task.unwrap_or(if f.cuda { 1 } else { 0 });
            r.gpus_per_task = r.gpus_per_task.max(gpus);
            for line in &s.extra {
                check_option(line).map_err(|m| in_file("extra", m))?;
                if !r.extra.contains(line) {
                    r.extra.push(line.clone());
                }
            }
        }
        let flag = |name: &str, m: String| SlurmError::Setting {
            what: format!("--{name}"),
            message: m,
        };
        if let Some(p) = &flags.partition {
            check_word(p).map_err(|m| flag("partition", m))?;
            r.partition = Some(p.clone());
        }
        if let Some(t) = &flags.time {
            r.time = Some(SlurmTime::parse(t).map_err(|m| flag("time", m))?);
        }
        if let Some(c) = flags.cpus_per_task {
            if c == 0 {
                return Err(flag("cpus-per-task", "must be at least 1".into()));
            }
            r.cpus_per_task = c;
        }
        if let Some(g) = flags.gpus_per_task {
            r.gpus_per_task = g;
        }
        Ok(r)
    }

    /// The `#SBATCH` option lines of these resources (without `#SBATCH `).
    pub fn sbatch_options(&self) -> Vec<String> {
        let mut o = vec![
            "--ntasks=1".to_string(),
            format!("--cpus-per-task={}", self.cpus_per_task),
        ];
        if self.gpus_per_task > 0 {
            o.push(format!("--gpus-per-task={}", self.gpus_per_task));
        }
        if let Some(p) = &self.partition {
            o.push(format!("--partition={p}"));
        }
        if let Some(t) = self.time {
            o.push(format!("--time={}", t.to_slurm()));
        }
        o.extend(self.extra.iter().cloned());
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_slurm_format() {
        let p = |s: &str| SlurmTime::parse(s).map(|t| t.0);
        assert_eq!(p("90"), Ok(5400));
        assert_eq!(p("5:30"), Ok(330));
        assert_eq!(p("1:30:00"), Ok(5400));
        assert_eq!(p("2-3"), Ok(2 * 86400 + 3 * 3600));
        assert_eq!(p("1-00:30"), Ok(86400 + 1800));
        assert_eq!(p("1-00:00:05"), Ok(86405));
        for bad in [
            "",
            "1h",
            "1:2:3:4",
            "-1",
            "1-",
            "a-1",
            "0",
            "1-1:2:3:4",
            "1.5",
        ] {
            let e = SlurmTime::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert_eq!(SlurmTime(86405).to_slurm(), "1-00:00:05");
        assert_eq!(SlurmTime(5400).to_slurm(), "0-01:30:00");
    }

    fn settings(partition: Option<&str>, time: Option<&str>, cpus: Option<u32>) -> SlurmSettings {
        SlurmSettings {
            partition: partition.map(String::from),
            time: time.map(String::from),
            cpus_per_task: cpus,
            gpus_per_task: None,
            extra: vec!["--mem=4G".into()],
        }
    }

    #[test]
    fn files_merge_to_the_largest_needs_and_flags_override() {
        let (a, b) = (
            settings(Some("long"), Some("30"), Some(2)),
            settings(None, Some("2:00:00"), Some(1)),
        );
        let files = [
            FileNeeds {
                path: Path::new("a.ron"),
                settings: Some(&a),
                cuda: false,
            },
            FileNeeds {
                path: Path::new("b.ron"),
                settings: Some(&b),
                cuda: true,
            },
            FileNeeds {
                path: Path::new("c.ron"),
                settings: None,
                cuda: false,
            },
        ];
        let r = Resources::merge(&files, &ResourceFlags::default()).unwrap();
        assert_eq!(r.partition.as_deref(), Some("long"));
        assert_eq!(r.time, Some(SlurmTime(7200)));
        assert_eq!(
            (r.cpus_per_task, r.gpus_per_task),
            (2, 1),
            "Cuda asks for a GPU"
        );
        assert_eq!(r.extra, vec!["--mem=4G".to_string()]);
        let flags = ResourceFlags {
            partition: Some("short".into()),
            time: Some("10".into()),
            cpus_per_task: Some(8),
            gpus_per_task: Some(0),
        };
        let r = Resources::merge(&files, &flags).unwrap();
        assert_eq!(
            r.sbatch_options(),
            [
                "--ntasks=1",
                "--cpus-per-task=8",
                "--partition=short",
                "--time=0-00:10:00",
                "--mem=4G"
            ]
        );
    }

    #[test]
    fn conflicts_and_bad_values_are_named() {
        let (a, b) = (
            settings(Some("x"), None, None),
            settings(Some("y"), None, None),
        );
        let files = [
            FileNeeds {
                path: Path::new("a.ron"),
                settings: Some(&a),
                cuda: false,
            },
            FileNeeds {
                path: Path::new("b.ron"),
                settings: Some(&b),
                cuda: false,
            },
        ];
        let e = Resources::merge(&files, &ResourceFlags::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.ron") && e.contains("b.ron") && e.contains("--partition"),
            "{e}"
        );
        let flags = ResourceFlags {
            time: Some("1h".into()),
            ..Default::default()
        };
        let e = Resources::merge(&[], &flags).unwrap_err().to_string();
        assert!(e.starts_with("--time: \"1h\" is not a Slurm time"), "{e}");
        let bad = SlurmSettings {
            extra: vec!["mem=4G".into()],
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "slurm.extra");
    }
}
