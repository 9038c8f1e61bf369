//! Range and consistency checks of an `ImagingJobSpec`; each error names the field path.
//!
//! The authority for `aperture run` (no API server). The CRD says the same things in its
//! schema (ranges, enums, patterns on the spec types) and CEL rules (`x-kubernetes-validations`
//! on the same types); a change here needs the same change there, and
//! `tests/crd_schema.rs` / `tests/crd_cel.rs` check that both reject each broken manifest
//! of `tests/crd/` under the same field path.

use super::{AutoOr, CleanAlgorithm, ImagingJobSpec, PipelineKind, SpecError, WindowKind};

fn check(ok: bool, field: &str, reason: impl FnOnce() -> String) -> Result<(), SpecError> {
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(field, reason()))
    }
}

fn finite_in(v: f64, lo: f64, hi: f64, field: &str) -> Result<(), SpecError> {
    check(v.is_finite() && v >= lo && v <= hi, field, || {
        format!("{v} is outside [{lo}, {hi}]")
    })
}

/// Validates the whole spec.
pub fn validate(s: &ImagingJobSpec) -> Result<(), SpecError> {
    let given: Vec<&str> = [
        ("visibilities", s.input.visibilities.is_some()),
        ("simulate", s.input.simulate.is_some()),
        ("measurementSet", s.input.measurement_set.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    if given.len() > 1 {
        return Err(SpecError::invalid(
            "spec.input",
            format!(
                "give exactly one of visibilities, simulate and measurementSet, not more \
                 (got {})",
                given.join(" and ")
            ),
        ));
    }
    if let Some(ms) = &s.input.measurement_set {
        check(
            !ms.path.trim().is_empty(),
            "spec.input.measurementSet.path",
            || "empty path".into(),
        )?;
        if let Some(c) = ms.channels_per_window {
            check(
                (1..=65_536).contains(&c),
                "spec.input.measurementSet.channelsPerWindow",
                || format!("{c} is outside 1…65536"),
            )?;
        }
        check(
            ms.spw.as_ref().is_none_or(|l| !l.is_empty()),
            "spec.input.measurementSet.spw",
            || "empty list (leave it out to select every spectral window)".into(),
        )?;
        ms.selection()?;
    }
    if given.is_empty() {
        return Err(SpecError::invalid(
            "spec.input",
            "give exactly one of visibilities (a Zarr URL), simulate and measurementSet",
        ));
    }
    match (&s.input.visibilities, &s.input.simulate) {
        (None, None) => {}
        (Some(url), _) => check(!url.trim().is_empty(), "spec.input.visibilities", || {
            "empty URL".into()
        })?,
        (None, Some(sim)) => {
            finite_in(sim.rmax, 10.0, 100_000.0, "spec.input.simulate.rmax")?;
            check(
                (1..=100_000).contains(&sim.frequency_windows),
                "spec.input.simulate.frequencyWindows",
                || format!("{} is outside 1…100000", sim.frequency_windows),
            )?;
            check(
                (1..=65_536).contains(&sim.channels_per_window),
                "spec.input.simulate.channelsPerWindow",
                || format!("{} is outside 1…65536", sim.channels_per_window),
            )?;
            finite_in(sim.freq_min_hz, 1e6, 1e12, "spec.input.simulate.freqMinHz")?;
            check(
                sim.freq_max_hz.is_finite()
                    && sim.freq_max_hz > sim.freq_min_hz
                    && sim.freq_max_hz <= 1e12,
                "spec.input.simulate.freqMaxHz",
                || {
                    format!(
                        "{} must exceed freqMinHz ({}) and be at most 1e12",
                        sim.freq_max_hz, sim.freq_min_hz
                    )
                },
            )?;
            check(
                (1..=100_000).contains(&sim.ntimes),
                "spec.input.simulate.ntimes",
                || format!("{} is outside 1…100000", sim.ntimes),
            )?;
            finite_in(sim.span_hours, 0.0, 24.0, "spec.input.simulate.spanHours")?;
            finite_in(sim.ra_deg, -360.0, 360.0, "spec.input.simulate.raDeg")?;
            finite_in(sim.dec_deg, -90.0, 90.0, "spec.input.simulate.decDeg")?;
            finite_in(sim.noise_jy, 0.0, 1e6, "spec.input.simulate.noiseJy")?;
            finite_in(
                sim.gain_phase_rms_deg,
                0.0,
                180.0,
                "spec.input.simulate.gainPhaseRmsDeg",
            )?;
            finite_in(
                sim.gain_amplitude_rms,
                0.0,
                0.9,
                "spec.input.simulate.gainAmplitudeRms",
            )?;
            let sky = &sim.sky;
            check(
                sky.sources <= 10_000,
                "spec.input.simulate.sky.sources",
                || format!("{} is more than 10000", sky.sources),
            )?;
            finite_in(
                sky.flux_min_jy,
                0.0,
                1e6,
                "spec.input.simulate.sky.fluxMinJy",
            )?;
            finite_in(
                sky.flux_max_jy,
                sky.flux_min_jy,
                1e6,
                "spec.input.simulate.sky.fluxMaxJy",
            )?;
            finite_in(sky.alpha_min, -5.0, 5.0, "spec.input.simulate.sky.alphaMin")?;
            finite_in(
                sky.alpha_max,
                sky.alpha_min,
                5.0,
                "spec.input.simulate.sky.alphaMax",
            )?;
            finite_in(sky.extent, 0.0, 0.95, "spec.input.simulate.sky.extent")?;
        }
    }
    if let Some(out) = &s.output {
        check(!out.trim().is_empty(), "spec.output", || "empty URL".into())?;
    }
    let im = &s.image;
    if let AutoOr::Value(n) = im.npixel {
        check((16..=65_536).contains(&n), "spec.image.npixel", || {
            format!("{n} is outside 16…65536")
        })?;
        check(n % 2 == 0, "spec.image.npixel", || {
            format!("{n} must be even")
        })?;
    }
    if let Some(c) = im.cellsize_arcsec {
        finite_in(c, 1e-4, 3600.0, "spec.image.cellsizeArcsec")?;
    }
    let (lo, hi) = match im.precision {
        super::PrecisionSpec::Single => (1e-5, 1e-1),
        super::PrecisionSpec::Double => (1e-12, 1e-1),
    };
    check(
        im.epsilon.is_finite() && im.epsilon >= lo && im.epsilon <= hi,
        "spec.image.epsilon",
        || {
            format!(
                "{} is outside [{lo:e}, {hi:e}] for {:?} precision",
                im.epsilon, im.precision
            )
        },
    )?;
    finite_in(
        im.weighting.robust,
        -2.0,
        2.0,
        "spec.image.weighting.robust",
    )?;
    if let Some(t) = im.taper_arcsec {
        finite_in(t, 1e-3, 1e6, "spec.image.taperArcsec")?;
    }
    let d = &s.deconvolution;
    check(
        (1..=10_000_000).contains(&d.niter),
        "spec.deconvolution.niter",
        || format!("{} is outside 1…10000000", d.niter),
    )?;
    check(
        d.gain > 0.0 && d.gain <= 1.0,
        "spec.deconvolution.gain",
        || format!("{} is outside (0, 1]", d.gain),
    )?;
    finite_in(d.threshold, 0.0, 1e9, "spec.deconvolution.threshold")?;
    check(
        d.fractional_threshold.is_finite() && (0.0..1.0).contains(&d.fractional_threshold),
        "spec.deconvolution.fractionalThreshold",
        || format!("{} is outside [0, 1)", d.fractional_threshold),
    )?;
    if let Some(a) = d.auto_threshold {
        finite_in(a, 0.0, 1e3, "spec.deconvolution.autoThreshold")?;
    }
    if d.algorithm == CleanAlgorithm::Msmfs {
        check(
            (1..=3).contains(&d.nmoment),
            "spec.deconvolution.nmoment",
            || format!("{} is outside 1…3", d.nmoment),
        )?;
    }
    check(!d.scales.is_empty(), "spec.deconvolution.scales", || {
        "empty list".into()
    })?;
    for (i, sc) in d.scales.iter().enumerate() {
        finite_in(*sc, 0.0, 1e4, &format!("spec.deconvolution.scales[{i}]"))?;
    }
    finite_in(d.scale_bias, 0.0, 10.0, "spec.deconvolution.scaleBias")?;
    if d.window.kind != WindowKind::NoEdge {
        check(
            d.window.pixels == 0,
            "spec.deconvolution.window.pixels",
            || "only used with type noEdge".into(),
        )?;
    }
    let c = &s.calibration;
    let mut seen = String::new();
    for ch in c.context.chars() {
        check(
            matches!(ch, 'T' | 'G' | 'B'),
            "spec.calibration.context",
            || {
                format!(
                    "{:?}: unknown term {ch:?} (use T, G, B, e.g. \"TG\")",
                    c.context
                )
            },
        )?;
        check(!seen.contains(ch), "spec.calibration.context", || {
            format!("{:?}: term {ch} appears twice", c.context)
        })?;
        seen.push(ch);
    }
    for (name, t) in [("T", &c.t), ("G", &c.g), ("B", &c.b)] {
        check(
            t.first_cycle >= 1,
            &format!("spec.calibration.{name}.firstCycle"),
            || "major cycles count from 1".into(),
        )?;
        if let Some(iv) = t.interval_seconds {
            finite_in(
                iv,
                1e-3,
                1e9,
                &format!("spec.calibration.{name}.intervalSeconds"),
            )?;
        }
        finite_in(
            t.tolerance,
            1e-15,
            1.0,
            &format!("spec.calibration.{name}.tolerance"),
        )?;
        check(
            t.max_iterations >= 1,
            &format!("spec.calibration.{name}.maxIterations"),
            || "must be at least 1".into(),
        )?;
    }
    check(
        (1..=100).contains(&s.major_cycles),
        "spec.majorCycles",
        || format!("{} is outside 1…100", s.major_cycles),
    )?;
    if s.pipeline == PipelineKind::Predict {
        check(
            s.input.simulate.is_some()
                || s.input.visibilities.is_some()
                || s.input.measurement_set.is_some(),
            "spec.input",
            || "predict needs the layout of an input dataset".into(),
        )?;
        check(s.predict.is_some(), "spec.predict", || {
            "pipeline predict needs spec.predict.modelImage, the model image to predict".into()
        })?;
    }
    if let Some(p) = &s.predict {
        check(
            !p.model_image.trim().is_empty(),
            "spec.predict.modelImage",
            || "empty URL".into(),
        )?;
    }
    let p = &s.parallelism;
    finite_in(
        p.target_task_seconds,
        0.1,
        3600.0,
        "spec.parallelism.targetTaskSeconds",
    )?;
    check(
        (1..=100_000).contains(&p.max_parallel),
        "spec.parallelism.maxParallel",
        || format!("{} is outside 1…100000", p.max_parallel),
    )?;
    check(
        (2..=64).contains(&p.reduction_fan_in),
        "spec.parallelism.reductionFanIn",
        || format!("{} is outside 2…64", p.reduction_fan_in),
    )?;
    check(
        (1..=20).contains(&p.max_attempts),
        "spec.parallelism.maxAttempts",
        || format!("{} is outside 1…20", p.max_attempts),
    )?;
    if let Some(n) = p.windows_per_shard {
        check(n >= 1, "spec.parallelism.windowsPerShard", || {
            "must be at least 1".into()
        })?;
    }
    if let Some(m) = p.worker_memory_mib {
        check(m >= 64, "spec.parallelism.workerMemoryMib", || {
            format!("{m} MiB is below the 64 MiB minimum")
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_job;

    fn with(extra: &str) -> String {
        format!(
            "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {{name: t}}\nspec:\n  input: {{simulate: {{}}}}\n{extra}"
        )
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        for (extra, field) in [
            ("  image: {epsilon: 1e-14}\n", "spec.image.epsilon"),
            (
                "  image: {precision: single, epsilon: 1e-7}\n",
                "spec.image.epsilon",
            ),
            ("  image: {npixel: 513}\n", "spec.image.npixel"),
            ("  deconvolution: {niter: 0}\n", "spec.deconvolution.niter"),
            ("  deconvolution: {gain: 1.5}\n", "spec.deconvolution.gain"),
            ("  calibration: {context: TX}\n", "spec.calibration.context"),
            ("  calibration: {context: TT}\n", "spec.calibration.context"),
            ("  majorCycles: 0\n", "spec.majorCycles"),
            (
                "  parallelism: {reductionFanIn: 1}\n",
                "spec.parallelism.reductionFanIn",
            ),
        ] {
            let err = parse_job(&with(extra), "m").unwrap_err();
            assert_eq!(err.field(), field, "{extra}: {err}");
        }
    }

    #[test]
    fn predict_needs_a_model_image() {
        let err = parse_job(&with("  pipeline: predict\n"), "m").unwrap_err();
        assert_eq!(err.field(), "spec.predict", "{err}");
        let err = parse_job(
            &with("  pipeline: predict\n  predict: {modelImage: ' '}\n"),
            "m",
        )
        .unwrap_err();
        assert_eq!(err.field(), "spec.predict.modelImage", "{err}");
        parse_job(
            &with("  pipeline: predict\n  predict: {modelImage: m.fits}\n"),
            "m",
        )
        .expect("predict with a model");
    }

    #[test]
    fn input_needs_exactly_one_source() {
        let both = with("").replace("{simulate: {}}", "{simulate: {}, visibilities: x}");
        assert_eq!(parse_job(&both, "m").unwrap_err().field(), "spec.input");
        let none = with("").replace("{simulate: {}}", "{}");
        assert_eq!(parse_job(&none, "m").unwrap_err().field(), "spec.input");
        let ms_and_vis = with("").replace(
            "{simulate: {}}",
            "{measurementSet: {path: a.ms}, visibilities: x}",
        );
        let err = parse_job(&ms_and_vis, "m").unwrap_err();
        assert_eq!(err.field(), "spec.input", "{err}");
        assert!(
            err.to_string()
                .contains("got visibilities and measurementSet"),
            "{err}"
        );
    }

    #[test]
    fn measurement_set_input_is_checked_field_by_field() {
        let ms =
            |body: &str| with("").replace("{simulate: {}}", &format!("{{measurementSet: {body}}}"));
        let job = parse_job(
            &ms(
                "{path: a.ms, column: corrected, field: 1, spw: [2, 0, 2], channels: '0:4', \
                 timeRange: 'mjd:5e9:', channelsPerWindow: 2}",
            ),
            "m",
        )
        .expect("a full measurementSet input");
        let m = job.spec.input.measurement_set.expect("measurementSet");
        let sel = m.selection().expect("selection");
        assert_eq!(sel.column, aperture_ms::DataColumn::Corrected);
        assert_eq!((sel.field, sel.spws), (Some(1), Some(vec![0, 2])));
        assert_eq!(sel.channels.and_then(|c| c.resolve(8)), Some(0..4));
        assert_eq!(
            sel.time.map(|t| (t.start, t.end, t.mjd)),
            Some((Some(5e9), None, true))
        );
        // An unquoted A:B is a YAML string too.
        let job = parse_job(&ms("{path: a.ms, channels: 0:64}"), "m").expect("unquoted");
        let m = job.spec.input.measurement_set.expect("measurementSet");
        assert_eq!(m.channels.as_deref(), Some("0:64"));
        for (body, field) in [
            ("{path: ' '}", "spec.input.measurementSet.path"),
            (
                "{path: a.ms, channels: '4:2'}",
                "spec.input.measurementSet.channels",
            ),
            (
                "{path: a.ms, timeRange: '20:10'}",
                "spec.input.measurementSet.timeRange",
            ),
            (
                "{path: a.ms, timeRange: 'x'}",
                "spec.input.measurementSet.timeRange",
            ),
            (
                "{path: a.ms, channelsPerWindow: 0}",
                "spec.input.measurementSet.channelsPerWindow",
            ),
            ("{path: a.ms, spw: []}", "spec.input.measurementSet.spw"),
            (
                "{path: a.ms, column: raw}",
                "spec.input.measurementSet.column",
            ),
        ] {
            let err = parse_job(&ms(body), "m").unwrap_err();
            assert_eq!(err.field(), field, "{body}: {err}");
        }
    }

    #[test]
    fn a_relative_measurement_set_path_is_relative_to_the_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("jobs");
        std::fs::create_dir(&sub).expect("mkdir");
        let file = sub.join("j.yaml");
        let text = with("").replace("{simulate: {}}", "{measurementSet: {path: ../obs.ms}}");
        std::fs::write(&file, text).expect("write");
        let job = super::super::load_job(&file).expect("job");
        let path = job.spec.input.measurement_set.expect("ms").path;
        assert_eq!(std::path::Path::new(&path), sub.join("../obs.ms"), "{path}");
        let abs = with("").replace("{simulate: {}}", "{measurementSet: {path: /data/obs.ms}}");
        std::fs::write(&file, abs).expect("write");
        let job = super::super::load_job(&file).expect("job");
        assert_eq!(
            job.spec.input.measurement_set.expect("ms").path,
            "/data/obs.ms"
        );
    }
}
