//! The contract api-gateway and engine-core share: the gRPC API (`journey.engine.v1`) and its
//! encoded descriptor set for server reflection; the tracing conventions (every span, event,
//! attribute, metadata-key and metric name); and the telemetry plumbing both binaries use.

pub mod auth;
pub mod conventions;
pub mod logging;
pub mod telemetry;

/// Generated messages and service stubs of `journey.engine.v1`.
#[allow(missing_docs)] // generated code
pub mod engine {
    tonic::include_proto!("journey.engine.v1");
}

/// The encoded `FileDescriptorSet` of the engine API, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("engine_descriptor");
