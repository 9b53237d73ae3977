//! The embedded default exporter: OTLP-JSON lines appended to a local file, one
//! `ExportTraceServiceRequest` per line, as the OpenTelemetry Collector's file exporter writes
//! them (so `otelcol`'s `otlpjsonfile` receiver, or any jq script, reads them back).
//!
//! The file rotates by size, as the Collector's file exporter (and logrotate) do: when a line
//! would take it past [`Rotation::max_bytes`] it becomes `<file>.1`, older ones shift up to
//! `<file>.<keep>` (the oldest is dropped) and a fresh file is opened. A line is never split:
//! a batch bigger than the limit goes whole into a fresh file. Several processes may share the
//! file (both services under `scripts/run.sh`): each follows the path when another rotated it,
//! and the rotation itself runs under an advisory lock so that two never rotate at once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// When the trace file rotates, and how many rotated files stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Size in bytes the file may reach; the line that would pass it opens a new file.
    pub max_bytes: u64,
    /// Rotated files kept, `<file>.1` (newest) to `<file>.<keep>`; 0 keeps none.
    pub keep: u32,
}

impl Default for Rotation {
    /// 100 MiB, 3 rotated files: at most 400 MiB on disk.
    fn default() -> Self {
        Self {
            max_bytes: 100 << 20,
            keep: 3,
        }
    }
}

/// `<path>.<n>`: the `n`-th newest rotated file of `path`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The trace file and its rotated files that exist, oldest first (`<path>.N` … `<path>.1`,
/// then `path`): what a reader of a whole trace history reads, in order.
pub fn trace_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| rotated_path(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if path.exists() {
        files.push(path.to_owned());
    }
    files
}

/// Appends each exported batch to a file as one JSON line, rotating it by size.
#[derive(Debug)]
pub struct JsonLinesExporter {
    path: PathBuf,
    rotation: Rotation,
    file: Mutex<File>,
    resource: ResourceAttributesWithSchema,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl JsonLinesExporter {
    /// Opens (creating parents and file) `path` for appending, rotating as `rotation` says.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            path: path.to_owned(),
            rotation,
            file: Mutex::new(open_append(path)?),
            resource: ResourceAttributesWithSchema::default(),
        })
    }

    fn write(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let mut line = serde_json::to_vec(&request)
            .map_err(|e| OTelSdkError::InternalFailure(format!("encoding spans: {e}")))?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("trace file lock poisoned".into()))?;
        let io = |e: std::io::Error| {
            OTelSdkError::InternalFailure(format!("writing {}: {e}", self.path.display()))
        };
        self.make_room(&mut file, line.len() as u64).map_err(io)?;
        // One write per batch: lines of processes sharing the file do not interleave.
        file.write_all(&line).map_err(io)
    }

    /// Points `file` at the path's current file, rotated first if `need` more bytes would take
    /// it past the limit (unless it is empty: a line is never split).
    fn make_room(&self, file: &mut File, need: u64) -> std::io::Result<()> {
        if !is_current(&self.path, file) {
            // Another process rotated it (or someone removed it): follow the path.
            *file = open_append(&self.path)?;
        }
        let size = file.metadata()?.len();
        if size == 0 || size.saturating_add(need) <= self.rotation.max_bytes {
            return Ok(());
        }
        // Processes sharing the file rotate one at a time; one that waited here finds the path
        // already moved on and only reopens it.
        file.lock()?;
        let rotated = if is_current(&self.path, file) {
            self.shift()
        } else {
            Ok(())
        };
        let _ = file.unlock();
        rotated?;
        *file = open_append(&self.path)?;
        Ok(())
    }

    /// `<file>.<keep-1>` → `<file>.<keep>` (replacing the oldest) … `<file>` → `<file>.1`.
    fn shift(&self) -> std::io::Result<()> {
        if self.rotation.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        for n in (1..self.rotation.keep).rev() {
            match std::fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        std::fs::rename(&self.path, rotated_path(&self.path, 1))
    }
}

/// Whether `file` is the file at `path` now (same device and inode).
#[cfg(unix)]
fn is_current(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(p), Ok(f)) => (p.dev(), p.ino()) == (f.dev(), f.ino()),
        _ => false,
    }
}

/// Elsewhere only this process writes the file: it is current while the path exists.
#[cfg(not(unix))]
fn is_current(path: &Path, _file: &File) -> bool {
    path.exists()
}

impl SpanExporter for JsonLinesExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let result = self.write(batch);
        std::future::ready(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("trace file lock poisoned".into()))?;
        file.flush()
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::SystemTime;

    fn span(i: u64, attr_len: usize) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(i) + 1),
                SpanId::from(i + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("span-{i}").into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: vec![KeyValue::new("pad", "x".repeat(attr_len))],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("journey-rotate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Span names per file, oldest file first; every line must parse whole.
    fn names(files: &[PathBuf]) -> Vec<Vec<String>> {
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                assert!(text.ends_with('\n'), "{}: a cut line", f.display());
                let mut out = Vec::new();
                for line in text.lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    for s in v["resourceSpans"][0]["scopeSpans"][0]["spans"]
                        .as_array()
                        .unwrap()
                    {
                        out.push(s["name"].as_str().unwrap().to_owned());
                    }
                }
                out
            })
            .collect()
    }

    fn export(e: &JsonLinesExporter, i: u64, attr_len: usize) {
        now_ready(e.export(vec![span(i, attr_len)])).unwrap();
    }

    /// The exporter's futures are ready at once.
    fn now_ready<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the file exporter never waits"),
        }
    }

    #[test]
    fn the_file_rotates_by_size_keeping_whole_lines_and_the_newest_files() {
        let d = dir("size");
        let path = d.join("traces.jsonl");
        let rotation = Rotation {
            max_bytes: 2_000,
            keep: 2,
        };
        let e = JsonLinesExporter::open(&path, rotation).unwrap();
        for i in 0..40 {
            export(&e, i, 200);
        }
        let files = trace_files(&path);
        assert_eq!(
            files,
            [rotated_path(&path, 2), rotated_path(&path, 1), path.clone()],
            "keep 2 rotated files"
        );
        assert!(!rotated_path(&path, 3).exists(), "the oldest is dropped");
        for f in &files {
            let len = std::fs::metadata(f).unwrap().len();
            assert!(len <= rotation.max_bytes, "{}: {len} bytes", f.display());
        }
        // The newest spans, in order, with no gap or repeat across the files.
        let all: Vec<String> = names(&files).concat();
        let first: u64 = all[0].trim_start_matches("span-").parse().unwrap();
        let want: Vec<String> = (first..40).map(|i| format!("span-{i}")).collect();
        assert_eq!(all, want);
        assert!(first > 0, "something was rotated away");

        // A line bigger than the limit is not split: it goes whole into a fresh file.
        export(&e, 99, 5_000);
        let files = trace_files(&path);
        assert_eq!(names(&files).last().unwrap(), &["span-99".to_owned()]);
        assert!(std::fs::metadata(&path).unwrap().len() > rotation.max_bytes);
        export(&e, 100, 10);
        assert_eq!(
            names(std::slice::from_ref(&path)),
            [["span-100".to_owned()]]
        );
        assert_eq!(names(&[rotated_path(&path, 1)]), [["span-99".to_owned()]]);
    }

    #[test]
    fn exporters_sharing_the_file_follow_each_others_rotation() {
        let d = dir("shared");
        let path = d.join("traces.jsonl");
        let rotation = Rotation {
            max_bytes: 3_000,
            keep: 50,
        };
        let a = JsonLinesExporter::open(&path, rotation).unwrap();
        let b = JsonLinesExporter::open(&path, rotation).unwrap();
        for i in 0..60 {
            let e = if i % 3 == 0 { &b } else { &a };
            export(e, i, 150);
        }
        let files = trace_files(&path);
        assert!(files.len() > 3, "{} files", files.len());
        let mut all: Vec<String> = names(&files).concat();
        assert_eq!(all.len(), 60, "every line once");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 60);
        for f in &files {
            let len = std::fs::metadata(f).unwrap().len();
            assert!(len <= rotation.max_bytes, "{}: {len} bytes", f.display());
        }
    }

    #[test]
    fn keep_zero_drops_the_full_file_and_a_removed_file_is_recreated() {
        let d = dir("zero");
        let path = d.join("t.jsonl");
        let e = JsonLinesExporter::open(
            &path,
            Rotation {
                max_bytes: 1_000,
                keep: 0,
            },
        )
        .unwrap();
        for i in 0..10 {
            export(&e, i, 300);
        }
        assert_eq!(trace_files(&path), std::slice::from_ref(&path));
        std::fs::remove_file(&path).unwrap();
        export(&e, 10, 10);
        assert_eq!(names(std::slice::from_ref(&path)), [["span-10".to_owned()]]);
    }
}
