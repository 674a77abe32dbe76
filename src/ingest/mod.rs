//! Ingest: the gRPC face of the gateway. Connections are capped ([`listener`]); every call
//! passes the door ([`door`]), where the client certificate says who the sender is and each
//! method's message limit is put on the body before anything is decoded; the service extracts,
//! calls the pipeline, and converts back. Protobuf types stop here.

mod batch;
mod convert;
pub mod door;
mod follow;
pub mod frames;
pub mod identity;
pub mod listener;
mod operations;
mod ops_convert;
mod registry_admin;
mod service;
pub mod status;

pub mod pb {
    //! The generated API types (`proto/brevdue/v1/gateway.proto`, `operations.proto`).
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("brevdue.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("brevdue_descriptor");
}

pub use convert::{draft_from_letter, letter_to_pb, receipt_to_pb};
pub use identity::{Caller, Operator, operator};
pub use listener::capped;
pub use operations::OperationsService;
pub use registry_admin::{MAX_CHANGES_BYTES, RegistryAdminService};
pub use service::{GatewayService, GrpcRouter, GrpcSettings, TlsMaterial, grpc_server};
