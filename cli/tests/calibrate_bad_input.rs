//! Bad input to `aperture calibrate`, `aperture apply-gains` and the gain options of
//! `aperture simulate`: a one-line error naming the option or file, exit code 2, and no
//! file left behind or changed.

mod common;

use std::path::PathBuf;

use common::{SMALL, aperture_in, assert_error, assert_ok, listing, simulate, stderr};

/// A temporary directory with an observation `obs/` (gains applied, true gains in
/// `truth.json`), its model `model/`, a solved table `gains.json`, and an observation of
/// the same array over a longer span, `long/`.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let p = |n: &str| tmp.path().join(n);
        let truth = p("truth.json");
        simulate(
            &p("obs"),
            &[
                "--sources",
                "2",
                "--gain-phase-rms",
                "20",
                "--true-gains",
                truth.to_str().unwrap(),
            ],
        );
        simulate(&p("model"), &["--sources", "2"]);
        let mut long = vec!["simulate"];
        long.extend(SMALL);
        long.extend(["--span-hours", "10", "--sources", "1", "--out", "long"]);
        assert_ok(&aperture_in(tmp.path(), long));
        assert_ok(&aperture_in(
            tmp.path(),
            [
                "calibrate",
                "obs",
                "--model-vis",
                "model",
                "--solution",
                "G",
                "--out",
                "gains.json",
            ],
        ));
        std::fs::write(p("broken.json"), "{\"format\": \"aperture-gains\", ").unwrap();
        Self { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs `aperture args` in the directory, expecting the error and no change.
    fn fails(&self, args: &[&str], needles: &[&str]) {
        let before = listing(self.tmp.path());
        let o = aperture_in(self.tmp.path(), args);
        eprintln!("checked: aperture {}", args.join(" "));
        assert_error(&o, needles);
        assert!(
            !stderr(&o).contains("cannot be used multiple times"),
            "{args:?}"
        );
        assert_eq!(
            listing(self.tmp.path()),
            before,
            "files changed by {args:?}"
        );
    }
}

/// `aperture calibrate obs --model-vis model --solution G EXTRA... --out g.json`, with
/// options in `extra` replacing the defaults.
fn cal<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["calibrate"];
    if !extra
        .iter()
        .any(|e| !e.starts_with('-') && e.ends_with('/'))
    {
        a.push("obs");
    }
    for (opt, val) in [
        ("--model-vis", "model"),
        ("--solution", "G"),
        ("--out", "g.json"),
    ] {
        if !extra.contains(&opt) {
            a.extend([opt, val]);
        }
    }
    a.extend(extra);
    a
}

#[test]
fn calibrate_rejects_bad_input() {
    let f = Fixture::new();
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (cal(&["nope/"]), &["nope"]),
        (
            cal(&["--model-vis", "gone"]),
            &["--model-vis gone", "does not exist"],
        ),
        // Same array, different times: rows differ.
        (cal(&["--model-vis", "long"]), &["--model-vis long", "row"]),
        (
            cal(&["--solution", "K"]),
            &["--solution", "unknown solution type"],
        ),
        (cal(&["--refant", "500"]), &["--refant 500", "antennas"]),
        (cal(&["--tol", "0"]), &["--tol"]),
        (cal(&["--max-iter", "0"]), &["--max-iter"]),
        (cal(&["--interval", "-5"]), &["--interval"]),
        (cal(&["--out", "g.txt"]), &["--out g.txt", ".json or .csv"]),
        (
            cal(&["--out", "gains.json"]),
            &["--out gains.json", "already exists"],
        ),
        (
            cal(&["--out", "obs/g.json"]),
            &["--out obs/g.json", "overlaps"],
        ),
        (
            cal(&["--out", "missing/g.json"]),
            &["--out missing/g.json", "does not exist"],
        ),
        (
            cal(&["--channels-per-window", "3"]),
            &["--channels-per-window", "does not divide"],
        ),
        (
            cal(&["--solution", "T", "--channels-per-window", "2"]),
            &["--channels-per-window", "only applies"],
        ),
    ];
    for (args, needles) in &cases {
        f.fails(args, needles);
    }
    // A model with other channels.
    let mut other = vec!["simulate"];
    other.extend(SMALL);
    other.extend(["--fmax", "160e6", "--sources", "1", "--out", "other"]);
    assert_ok(&aperture_in(f.tmp.path(), other));
    f.fails(
        &cal(&["--model-vis", "other"]),
        &["--model-vis other", "channel"],
    );
    // Overwriting is allowed when asked.
    assert_ok(&aperture_in(
        f.tmp.path(),
        cal(&["--out", "gains.json", "--overwrite"]),
    ));
}

#[test]
fn apply_gains_and_simulate_reject_bad_input() {
    let f = Fixture::new();
    let ap = |extra: &[&'static str]| {
        let mut a = vec![
            "apply-gains",
            "obs",
            "--gains",
            "gains.json",
            "--out",
            "fixed",
        ];
        a.extend(extra);
        a
    };
    f.fails(
        &[
            "apply-gains",
            "nope",
            "--gains",
            "gains.json",
            "--out",
            "fixed",
        ],
        &["nope"],
    );
    f.fails(
        &[
            "apply-gains",
            "obs",
            "--gains",
            "none.json",
            "--out",
            "fixed",
        ],
        &["--gains none.json", "does not exist"],
    );
    f.fails(
        &[
            "apply-gains",
            "obs",
            "--gains",
            "broken.json",
            "--out",
            "fixed",
        ],
        &["--gains", "broken.json", "not valid JSON"],
    );
    // Times of the longer observation fall outside the table's intervals.
    f.fails(
        &[
            "apply-gains",
            "long",
            "--gains",
            "gains.json",
            "--out",
            "fixed",
        ],
        &["--gains gains.json", "long", "time"],
    );
    f.fails(
        &[
            "apply-gains",
            "obs",
            "--gains",
            "gains.json",
            "--out",
            "obs",
        ],
        &["--out obs"],
    );
    f.fails(&ap(&["--mode", "sideways"]), &["--mode"]);
    let sim = |extra: &[&'static str]| {
        let mut a = vec!["simulate"];
        a.extend(SMALL);
        a.extend(extra);
        a.extend(["--out", "s"]);
        a
    };
    f.fails(&sim(&["--gain-amp-rms", "2"]), &["--gain-amp-rms"]);
    f.fails(&sim(&["--gain-phase-rms", "-1"]), &["--gain-phase-rms"]);
    f.fails(&sim(&["--gain-interval", "0"]), &["--gain-interval"]);
    f.fails(&sim(&["--true-gains", "t.txt"]), &["--true-gains t.txt"]);
    f.fails(
        &sim(&["--true-gains", "truth.json"]),
        &["--true-gains truth.json", "already exists"],
    );
    // The fixture's good table applies.
    assert_ok(&aperture_in(f.tmp.path(), ap(&[])));
    assert!(f.path("fixed").join("vis.npy").exists());
}
