//! Ingest: the gRPC face of the gateway. Mutual TLS says who the sender is; the service
//! extracts, calls the pipeline, and converts back. Protobuf types stop here.

mod convert;
mod follow;
mod identity;
mod service;
pub mod status;

pub mod pb {
    //! The generated API types (`proto/brevdue/v1/gateway.proto`).
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("brevdue.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("brevdue_descriptor");
}

pub use convert::{draft_from_letter, letter_to_pb, receipt_to_pb};
pub use service::{GatewayService, TlsMaterial, grpc_server};
