//! Shared by the CRD tests: the example manifests, the broken manifests of `tests/crd/`
//! with their expectations, and YAML → JSON.
//!
//! A broken manifest opens with two comment lines:
//! `# <what is wrong>; expect: "<error substring>"` and `# field: <field path>`.
//! `invalid/` holds manifests the schema rejects (check-jsonschema must fail them),
//! `invalid-cel/` manifests the schema accepts and one CEL rule rejects.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};

/// A manifest that must be rejected, with what must be said about it.
#[derive(Debug, Clone)]
pub struct Broken {
    pub path: PathBuf,
    /// What is wrong, in words.
    pub what: String,
    /// A substring of the expected error message.
    pub expect: String,
    /// The field path the error must name (`spec.parallelism.reductionFanIn`).
    pub field: String,
    pub text: String,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `examples/*.yaml` of the repository: each must be valid everywhere.
pub fn examples() -> Vec<PathBuf> {
    yaml_files(&manifest_dir().join("../../examples"))
}

/// The broken manifests of `tests/crd/<dir>/`.
pub fn broken(dir: &str) -> Vec<Broken> {
    let files = yaml_files(&manifest_dir().join("tests/crd").join(dir));
    assert!(!files.is_empty(), "no manifests in tests/crd/{dir}");
    files.into_iter().map(|p| parse_header(&p)).collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn parse_header(path: &Path) -> Broken {
    let text = std::fs::read_to_string(path).expect("readable manifest");
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    let bad = |why: &str| -> ! { panic!("{}: {why}", path.display()) };
    let first = first
        .strip_prefix("# ")
        .unwrap_or_else(|| bad("no header comment"));
    let (what, expect) = first
        .split_once("; expect: ")
        .unwrap_or_else(|| bad("first line lacks `; expect: \"…\"`"));
    let expect = expect
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or_else(|| bad("expected substring not in double quotes"));
    let field = second
        .strip_prefix("# field: ")
        .unwrap_or_else(|| bad("second line is not `# field: <path>`"));
    Broken {
        path: path.to_path_buf(),
        what: what.to_string(),
        expect: expect.to_string(),
        field: field.to_string(),
        text: text.clone(),
    }
}

/// A YAML manifest as JSON (the form the API server holds).
pub fn to_json(text: &str, origin: &Path) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", origin.display()))
}

/// The file name, for messages.
pub fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
