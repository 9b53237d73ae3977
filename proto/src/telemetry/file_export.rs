//! The embedded default exporter: OTLP-JSON lines appended to a local file, one
//! `ExportTraceServiceRequest` per line, as the OpenTelemetry Collector's file exporter writes
//! them (so `otelcol`'s `otlpjsonfile` receiver, or any jq script, reads them back).

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

/// Appends each exported batch to a file as one JSON line.
#[derive(Debug)]
pub struct JsonLinesExporter {
    path: PathBuf,
    file: Mutex<File>,
    resource: ResourceAttributesWithSchema,
}

impl JsonLinesExporter {
    /// Opens (creating parents and file) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
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
        // One write per batch: lines of processes sharing the file do not interleave.
        file.write_all(&line).map_err(|e| {
            OTelSdkError::InternalFailure(format!("writing {}: {e}", self.path.display()))
        })
    }
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
