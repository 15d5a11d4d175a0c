//! Random damage to valid inputs never panics or aborts: every shipped
//! experiment file, mutated at random (extreme numbers, deleted or repeated
//! text, swapped names, truncation), and damaged CSV and IDX data files are
//! given to the binary's `check` (and a sample of mutants to a short `run`);
//! each must end in success or a clean error (exit 1 with `error: `), or a
//! clean stop (130) — never a panic (101), an abort (134) or a signal.
//!
//! The mutations are drawn from a fixed seed, so a failure reproduces; the
//! failing input is printed in full. `SLICEDSCORE_FUZZ_SEED=<n>` draws
//! other mutations (to explore further than the default set).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::binary_with_timeout;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Numbers that break naive code: zero, negative, fractional where an
/// integer is expected, tiny, huge, beyond u64, non-finite.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "0.5",
    "-0.0",
    "1e-300",
    "1e300",
    "100000000000",
    "4294967297",
    "18446744073709551615",
    "99999999999999999999999",
    "NaN",
    "inf",
    "-inf",
    "\"x\"",
    "[]",
    "()",
    "None",
];

/// The seed of a test's mutations: `default`, or mixed with
/// `SLICEDSCORE_FUZZ_SEED` when that is set.
fn seed(default: u64) -> u64 {
    match std::env::var("SLICEDSCORE_FUZZ_SEED") {
        Ok(s) => {
            default
                ^ s.parse::<u64>()
                    .expect("SLICEDSCORE_FUZZ_SEED is a number")
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
        Err(_) => default,
    }
}

/// How long one command may take before the test gives up on it (a slow
/// but legal setting, e.g. a large data set, is not a failure).
const TIME_LIMIT: Duration = Duration::from_secs(90);

#[derive(Debug)]
enum Outcome {
    /// Exit status (0, 1 or 130 are clean).
    Exited(i32, String),
    /// Killed by a signal (an abort is SIGABRT), with its stderr.
    Signalled(#[allow(dead_code)] String),
    /// Still running at the time limit (killed by the test).
    TimedOut,
}

/// Runs the binary with `args`, killing it at the time limit.
fn run_binary(args: &[&str]) -> Outcome {
    match binary_with_timeout(args, TIME_LIMIT) {
        None => Outcome::TimedOut,
        Some((s, err)) => match s.code() {
            Some(c) => Outcome::Exited(c, err),
            None => Outcome::Signalled(err),
        },
    }
}

/// Whether an outcome is clean; the reason when it is not.
fn problem(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Exited(0 | 130, err) if !err.contains("panicked") => None,
        Outcome::Exited(1, err) if err.contains("error: ") && !err.contains("panicked") => None,
        Outcome::TimedOut => None,
        other => Some(format!("{other:?}")),
    }
}

/// One random change to an experiment file's text.
fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let numbers: Vec<(usize, usize)> = number_spans(text);
    let idents: Vec<(usize, usize)> = ident_spans(text);
    match rng.gen_range(0..8) {
        // An extreme number in place of one (the most telling change).
        0..=3 if !numbers.is_empty() => {
            let (a, b) = *numbers.choose(rng).unwrap();
            format!(
                "{}{}{}",
                &text[..a],
                EXTREMES.choose(rng).unwrap(),
                &text[b..]
            )
        }
        // One name in place of another (a field, variant or plugin).
        4 if idents.len() > 1 => {
            let (a, b) = *idents.choose(rng).unwrap();
            let (c, d) = *idents.choose(rng).unwrap();
            format!("{}{}{}", &text[..a], &text[c..d], &text[b..])
        }
        // A line deleted or repeated.
        5 => {
            let lines: Vec<&str> = text.lines().collect();
            let i = rng.gen_range(0..lines.len());
            let mut out: Vec<&str> = lines.clone();
            if rng.gen_bool(0.5) {
                out.remove(i);
            } else {
                out.insert(i, lines[i]);
            }
            out.join("\n")
        }
        // Truncated.
        6 => {
            let cut = floor_char(text, rng.gen_range(0..text.len()));
            text[..cut].to_string()
        }
        // A stray character.
        _ => {
            let at = floor_char(text, rng.gen_range(0..text.len()));
            let junk = ["(", ")", ",", ":", "\"", "{", "}", "-", "é", "\0"];
            format!(
                "{}{}{}",
                &text[..at],
                junk.choose(rng).unwrap(),
                &text[at..]
            )
        }
    }
}

/// The lines of `mutant` that `original` does not have (or `(deleted or
/// repeated a line)` when there are none).
fn changed_lines(original: &str, mutant: &str) -> String {
    let old: std::collections::HashSet<&str> = original.lines().collect();
    let new: Vec<&str> = mutant.lines().filter(|l| !old.contains(l)).collect();
    if new.is_empty() {
        "(a line deleted or repeated)".into()
    } else {
        new.join("\n")
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Byte spans of numeric literals outside comments.
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    spans(
        text,
        |c| c.is_ascii_digit() || c == '.' || c == 'e' || c == '-',
        |c| c.is_ascii_digit(),
    )
}

/// Byte spans of identifiers outside comments.
fn ident_spans(text: &str) -> Vec<(usize, usize)> {
    spans(
        text,
        |c| c.is_ascii_alphanumeric() || c == '_',
        |c| c.is_ascii_alphabetic(),
    )
}

fn spans(
    text: &str,
    inside: impl Fn(char) -> bool,
    first: impl Fn(char) -> bool,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split("//").next().unwrap();
        let chars: Vec<(usize, char)> = code.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (start, c) = chars[i];
            let boundary = i == 0 || !inside(chars[i - 1].1);
            if first(c) && boundary {
                let mut j = i;
                while j < chars.len() && inside(chars[j].1) {
                    j += 1;
                }
                let end = chars.get(j).map_or(code.len(), |&(e, _)| e);
                out.push((offset + start, offset + end));
                i = j;
            } else {
                i += 1;
            }
        }
        offset += line.len();
    }
    out
}

/// Runs the checks on `inputs` with a few threads; panics listing every
/// unclean outcome with its input.
fn check_all(inputs: Vec<(String, Vec<String>)>) {
    let total = inputs.len();
    let queue = Mutex::new(inputs.into_iter());
    let failures = Mutex::new(Vec::new());
    let tally = Mutex::new(BTreeMap::<String, usize>::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let next = queue.lock().unwrap().next();
                let Some((what, args)) = next else { break };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let outcome = run_binary(&args);
                let kind = match &outcome {
                    Outcome::Exited(c, _) => format!("exit {c}"),
                    Outcome::Signalled(_) => "signal".into(),
                    Outcome::TimedOut => "time limit".into(),
                };
                *tally.lock().unwrap().entry(kind).or_default() += 1;
                if let Some(p) = problem(&outcome) {
                    failures.lock().unwrap().push(format!("{what}\n→ {p}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!("{total} inputs: {:?}", tally.into_inner().unwrap());
    assert!(
        failures.is_empty(),
        "{} unclean outcome(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn shipped_experiments() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}

#[test]
fn mutated_experiment_files_never_panic_in_check() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed(2026));
    let mut inputs = Vec::new();
    for (i, file) in shipped_experiments().iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        for k in 0..20 {
            let mut mutant = mutate(&text, &mut rng);
            if rng.gen_bool(0.3) {
                mutant = mutate(&mutant, &mut rng);
            }
            let path = tmp.path().join(format!("m{i}-{k}.ron"));
            std::fs::write(&path, &mutant).unwrap();
            inputs.push((
                format!(
                    "check of a mutant of {} (full text in the test's seed), changed lines:\n{}",
                    file.display(),
                    changed_lines(&text, &mutant)
                ),
                vec!["check".into(), path.display().to_string()],
            ));
        }
    }
    check_all(inputs);
}

#[test]
fn mutated_small_experiments_never_panic_in_a_short_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed(7));
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.ron"),
    )
    .unwrap()
    .replace("train_size: 20000", "train_size: 500")
    .replace("test_size: 5000", "test_size: 200")
    .replace("val_size: 1000", "val_size: 100")
    .replace("hidden: [128, 128]", "hidden: [16]")
    .replace("iterations: 6000", "iterations: 40")
    .replace("eval_every: 500", "eval_every: 10");
    let mut inputs = Vec::new();
    for k in 0..40 {
        let mutant = mutate(&base, &mut rng);
        let path = tmp.path().join(format!("r{k}.ron"));
        std::fs::write(&path, &mutant).unwrap();
        inputs.push((
            format!(
                "short run of a mutant of the quickstart, changed lines:\n{}",
                changed_lines(&base, &mutant)
            ),
            vec![
                "run".into(),
                path.display().to_string(),
                "--run-dir".into(),
                tmp.path().join(format!("run{k}")).display().to_string(),
                "--no-progress".into(),
                "--stop-after".into(),
                "60".into(),
            ],
        ));
    }
    check_all(inputs);
}

/// A small valid CSV table (a header line, 3 columns, 60 rows).
fn csv_text(rng: &mut ChaCha8Rng) -> String {
    let mut s = String::from("a,b,c\n");
    for _ in 0..60 {
        let row: Vec<String> = (0..3)
            .map(|_| format!("{:.4}", rng.gen_range(-2.0..2.0)))
            .collect();
        s.push_str(&row.join(","));
        s.push('\n');
    }
    s
}

fn mutate_csv(text: &str, rng: &mut ChaCha8Rng) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let i = rng.gen_range(0..lines.len());
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match rng.gen_range(0..7) {
        0 => out[i] = out[i].replacen(',', "", 1),
        1 => out[i] = format!("{},", out[i]),
        2 => {
            out[i] = ["abc", "nan", "inf", "1e400", "", " ", "\u{feff}1"]
                .choose(rng)
                .unwrap()
                .to_string()
        }
        3 => out.truncate(i),
        4 => out = vec![out[0].clone()],
        5 => out.insert(i, String::new()),
        _ => {
            let all = out.join("\n");
            let mut bytes = all.into_bytes();
            let j = rng.gen_range(0..bytes.len());
            bytes[j] = rng.gen();
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    out.join("\n")
}

#[test]
fn damaged_csv_files_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed(11));
    let base = csv_text(&mut rng);
    let mut inputs = Vec::new();
    for k in 0..40 {
        let mut data = mutate_csv(&base, &mut rng);
        if rng.gen_bool(0.3) {
            data = mutate_csv(&data, &mut rng);
        }
        let csv = tmp.path().join(format!("t{k}.csv"));
        std::fs::write(&csv, &data).unwrap();
        let exp = format!(
            r#"Experiment(
    name: "fuzz_csv", seed: 0,
    task: {{"tabular": (source: Csv(path: {:?}, header: true), preprocessing: Pca, noise_std: 0.05, importance_samples: 100)}},
    model: {{"dkef": (features: 8, layers: 1, inducing_points: 10)}},
    objective: {{"ssm": (projections: 1)}},
    projection: {{"rademacher": ()}},
    optimizer: Adam(lr: 0.01), batch_size: 16, iterations: 10, eval_every: 5,
)"#,
            csv.display().to_string()
        );
        let path = tmp.path().join(format!("t{k}.ron"));
        std::fs::write(&path, &exp).unwrap();
        inputs.push((
            format!("check of a CSV:\n{data}"),
            vec!["check".into(), path.display().to_string()],
        ));
    }
    check_all(inputs);
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

#[test]
fn damaged_idx_files_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed(13));
    let count = 40;
    let pixels: Vec<u8> = (0..count * 16).map(|_| rng.gen()).collect();
    let labels: Vec<u8> = (0..count).map(|_| rng.gen_range(0..10)).collect();
    let images = idx(0x803, &[count as u32, 4, 4], &pixels);
    let label_file = idx(0x801, &[count as u32], &labels);
    let mut inputs = Vec::new();
    for k in 0..40 {
        let damage_labels = rng.gen_bool(0.3);
        let mut bytes = if damage_labels {
            label_file.clone()
        } else {
            images.clone()
        };
        match rng.gen_range(0..4) {
            0 => {
                let j = rng.gen_range(0..bytes.len().min(16));
                bytes[j] = rng.gen(); // the header
            }
            1 => bytes.truncate(rng.gen_range(0..bytes.len())),
            2 => bytes.extend([0u8; 3]),
            _ => {
                let j = rng.gen_range(0..bytes.len());
                bytes[j] = rng.gen();
            }
        }
        let (ip, lp) = (
            tmp.path().join(format!("i{k}")),
            tmp.path().join(format!("l{k}")),
        );
        let (iw, lw) = if damage_labels {
            (&images, &bytes)
        } else {
            (&bytes, &label_file)
        };
        std::fs::write(&ip, iw).unwrap();
        std::fs::write(&lp, lw).unwrap();
        let exp = format!(
            r#"Experiment(
    name: "fuzz_idx", seed: 0,
    task: {{"images": (source: Idx(images: {:?}, labels: {:?}), sm_eval_points: 4, samples: 4)}},
    model: {{"nice": (couplings: 2, hidden_layers: 1, hidden_units: 8)}},
    objective: {{"ssm": (projections: 1)}},
    projection: {{"rademacher": ()}},
    optimizer: Adam(lr: 0.001), batch_size: 8, iterations: 10, eval_every: 5,
)"#,
            ip.display().to_string(),
            lp.display().to_string()
        );
        let path = tmp.path().join(format!("x{k}.ron"));
        std::fs::write(&path, &exp).unwrap();
        inputs.push((
            format!(
                "check of damaged IDX {} (labels damaged: {damage_labels})",
                ip.display()
            ),
            vec!["check".into(), path.display().to_string()],
        ));
    }
    check_all(inputs);
}
