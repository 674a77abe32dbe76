//! The operator console: what the operator services call. It holds what operator actions need
//! (the store, the roster) and is the one place those actions are carried out, so the gRPC
//! service (in `ingest`) and the dashboard only extract, call and convert.

use std::sync::Arc;

use crate::store::Store;

use super::Roster;

pub struct Console {
    pub store: Arc<dyn Store>,
    pub roster: Arc<Roster>,
}

impl Console {
    pub fn new(store: Arc<dyn Store>, roster: Arc<Roster>) -> Arc<Self> {
        Arc::new(Console { store, roster })
    }
}
