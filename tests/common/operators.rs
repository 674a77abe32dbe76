//! Operators in tests: issuing an operator's certificate directory exactly as `brevdue
//! operators add` does, and connecting to the operator services with it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use brevdue::cli::operators::{self, OpsClient};
use brevdue::domain::OperatorName;

use super::Harness;

impl Harness {
    /// The certificate directory of operator `name`.
    pub fn operator_dir(&self, name: &str) -> PathBuf {
        self.outside.path().join("operators").join(name)
    }

    /// Issues and records an operator certificate for `name` into [`Harness::operator_dir`].
    pub async fn add_operator(&self, name: &str) -> PathBuf {
        let dir = self.operator_dir(name);
        let name: OperatorName = name.parse().expect("operator name");
        operators::add(&self.config, &name, &dir, Duration::from_secs(86_400))
            .await
            .expect("operators add");
        dir
    }

    /// An operator client for `name` whose certificate the running gateway already knows:
    /// waits (a deadline that only fails the test) until WhoAmI answers, since an operator
    /// added while the gateway runs is picked up at its next refresh.
    pub async fn operator(&self, name: &str) -> OpsClient {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut c = operators::connect(&self.server_url(), &self.operator_dir(name))
                .await
                .expect("operator connects");
            match c.who_am_i(brevdue::ingest::pb::WhoAmIRequest {}).await {
                Ok(_) => return c,
                Err(s) => assert!(
                    Instant::now() < deadline,
                    "operator {name} still refused after 30 s: {s:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
