//! Checks of an `ImagingJobSpec` that only matter on Kubernetes (the operator runs them
//! after `validate`; `aperture run` ignores `spec.workers.volumes` and
//! `spec.workers.volumeMounts`): the worker volumes are consistent, and a MeasurementSet
//! input lies on one of them, since only the worker pods can open it.
//!
//! Kubernetes references: volumes and mounts,
//! <https://kubernetes.io/docs/concepts/storage/volumes/>; a pod's volume names must be
//! unique DNS labels and its container's mount paths unique
//! (<https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#volumes>).

use std::path::{Component, Path};

use super::{ImagingJobSpec, SpecError};

/// Name of the operator's scratch `emptyDir` in every worker pod.
pub const SCRATCH_VOLUME: &str = "tmp";
/// Where the scratch volume is mounted (the root filesystem is read-only).
pub const SCRATCH_MOUNT: &str = "/tmp";

/// RFC 1123 label: what a pod volume's name must be.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let end = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && b.len() <= 63 && b.iter().all(inner) && end(&b[0]) && end(&b[b.len() - 1])
}

/// An absolute path without `.`/`..` components (so prefix tests mean containment).
fn is_plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Validates what the operator needs beyond [`ImagingJobSpec::validate`]; each error
/// names its field path (`spec.workers.volumeMounts[1].name`, …).
pub fn validate_cluster(s: &ImagingJobSpec) -> Result<(), SpecError> {
    let w = &s.workers;
    let mut names: Vec<&str> = Vec::new();
    for (i, v) in w.volumes.iter().enumerate() {
        let field = format!("spec.workers.volumes[{i}].name");
        if !is_dns_label(&v.name) {
            return Err(SpecError::invalid(
                field,
                format!(
                    "{:?} is not a volume name (a DNS label: at most 63 lowercase letters, \
                     digits and '-')",
                    v.name
                ),
            ));
        }
        if v.name == SCRATCH_VOLUME {
            return Err(SpecError::invalid(
                field,
                format!("{SCRATCH_VOLUME:?} is the operator's scratch volume; choose another name"),
            ));
        }
        if names.contains(&v.name.as_str()) {
            return Err(SpecError::invalid(
                field,
                format!("volume {:?} is given twice", v.name),
            ));
        }
        names.push(&v.name);
    }
    let mut paths: Vec<&Path> = Vec::new();
    for (i, m) in w.volume_mounts.iter().enumerate() {
        if !names.contains(&m.name.as_str()) {
            return Err(SpecError::invalid(
                format!("spec.workers.volumeMounts[{i}].name"),
                format!(
                    "{:?} is not one of spec.workers.volumes ({})",
                    m.name,
                    if names.is_empty() {
                        "none given".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        let field = format!("spec.workers.volumeMounts[{i}].mountPath");
        let p = Path::new(&m.mount_path);
        if !is_plain_absolute(p) || p == Path::new("/") {
            return Err(SpecError::invalid(
                field,
                format!(
                    "{:?} must be an absolute path below / without '.' or '..'",
                    m.mount_path
                ),
            ));
        }
        if p == Path::new(SCRATCH_MOUNT) {
            return Err(SpecError::invalid(
                field,
                format!("{SCRATCH_MOUNT} is the operator's scratch volume"),
            ));
        }
        if paths.contains(&p) {
            return Err(SpecError::invalid(
                field,
                format!("{:?} is mounted twice", m.mount_path),
            ));
        }
        paths.push(p);
    }
    if let Some(ms) = &s.input.measurement_set {
        let field = "spec.input.measurementSet.path";
        let p = Path::new(&ms.path);
        if !is_plain_absolute(p) {
            return Err(SpecError::invalid(
                field,
                format!(
                    "{:?}: on Kubernetes the path must be absolute (without '.' or '..'), on a \
                     volume of spec.workers.volumeMounts",
                    ms.path
                ),
            ));
        }
        if !paths.iter().any(|m| p.starts_with(m) && p != *m) {
            let mounts: Vec<String> = paths.iter().map(|m| m.display().to_string()).collect();
            return Err(SpecError::invalid(
                field,
                format!(
                    "{} is not under any mountPath of spec.workers.volumeMounts ({}): only the \
                     worker pods read the MeasurementSet, so give them the volume that holds it \
                     (spec.workers.volumes) and mount it (spec.workers.volumeMounts)",
                    ms.path,
                    if mounts.is_empty() {
                        "none given".to_string()
                    } else {
                        mounts.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_job;
    use super::*;

    fn job(input: &str, workers: &str) -> ImagingJobSpec {
        let text = format!(
            "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {{name: t}}\n\
             spec:\n  input: {input}\n  workers: {workers}\n"
        );
        parse_job(&text, "t.yaml").expect("parses").spec
    }

    const VOLS: &str = "{volumes: [{name: obs, persistentVolumeClaim: {claimName: obs}}], \
                        volumeMounts: [{name: obs, mountPath: /data, readOnly: true}]}";

    fn err(input: &str, workers: &str) -> (String, String) {
        let e = validate_cluster(&job(input, workers)).expect_err("refused");
        (e.field().to_string(), e.to_string())
    }

    #[test]
    fn a_measurement_set_under_a_mount_is_accepted() {
        validate_cluster(&job("{measurementSet: {path: /data/obs/x.ms}}", VOLS)).expect("ok");
        // Volumes without a MeasurementSet are fine too, and so is no volume at all.
        validate_cluster(&job("{simulate: {}}", VOLS)).expect("ok");
        validate_cluster(&job("{simulate: {}}", "{}")).expect("ok");
    }

    #[test]
    fn a_measurement_set_outside_the_mounts_names_both_fields() {
        for (path, needle) in [
            ("/elsewhere/x.ms", "not under any mountPath"),
            ("/database/x.ms", "not under any mountPath"),
            ("/data", "not under any mountPath"),
            ("/data/../etc/x.ms", "must be absolute"),
            ("obs/x.ms", "must be absolute"),
        ] {
            let (field, msg) = err(&format!("{{measurementSet: {{path: '{path}'}}}}"), VOLS);
            assert_eq!(field, "spec.input.measurementSet.path", "{path}");
            assert!(msg.contains(needle), "{path}: {msg}");
        }
        let (_, msg) = err("{measurementSet: {path: /elsewhere/x.ms}}", VOLS);
        assert!(msg.contains("spec.workers.volumeMounts (/data)"), "{msg}");
        let (_, msg) = err("{measurementSet: {path: /data/x.ms}}", "{}");
        assert!(msg.contains("(none given)"), "{msg}");
    }

    #[test]
    fn inconsistent_volumes_and_mounts_name_their_field() {
        let pvc = "persistentVolumeClaim: {claimName: c}";
        for (workers, field, needle) in [
            (
                format!("{{volumes: [{{name: tmp, {pvc}}}]}}"),
                "spec.workers.volumes[0].name",
                "scratch",
            ),
            (
                format!("{{volumes: [{{name: a, {pvc}}}, {{name: a, {pvc}}}]}}"),
                "spec.workers.volumes[1].name",
                "twice",
            ),
            (
                format!("{{volumes: [{{name: Big_Name, {pvc}}}]}}"),
                "spec.workers.volumes[0].name",
                "DNS label",
            ),
            (
                format!(
                    "{{volumes: [{{name: a, {pvc}}}], volumeMounts: [{{name: b, mountPath: /b}}]}}"
                ),
                "spec.workers.volumeMounts[0].name",
                "not one of spec.workers.volumes (a)",
            ),
            (
                format!(
                    "{{volumes: [{{name: a, {pvc}}}], volumeMounts: [{{name: a, mountPath: rel}}]}}"
                ),
                "spec.workers.volumeMounts[0].mountPath",
                "absolute",
            ),
            (
                format!(
                    "{{volumes: [{{name: a, {pvc}}}], volumeMounts: [{{name: a, mountPath: /tmp}}]}}"
                ),
                "spec.workers.volumeMounts[0].mountPath",
                "scratch",
            ),
            (
                format!(
                    "{{volumes: [{{name: a, {pvc}}}], volumeMounts: [{{name: a, mountPath: /d}}, \
                     {{name: a, mountPath: /d}}]}}"
                ),
                "spec.workers.volumeMounts[1].mountPath",
                "twice",
            ),
        ] {
            let (f, msg) = err("{simulate: {}}", &workers);
            assert_eq!(f, field, "{workers}: {msg}");
            assert!(msg.contains(needle), "{workers}: {msg}");
        }
    }
}
