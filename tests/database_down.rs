//! PostgreSQL unreachable while the gateway runs: letters get UNAVAILABLE, never an accepted
//! receipt, nothing is half-stored, and the gateway recovers by itself when the database is back.
//! The outage is a real one: the gateway reaches PostgreSQL through a TCP relay the test cuts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brevdue::ingest::pb;
use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// A relay to PostgreSQL that can be cut (every connection dropped, new ones refused).
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, l) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().await.push(link);
            }
        });
        Relay { port, up, links }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_unavailable_and_no_accepted_receipt() {
    let mut h = Harness::prepare_on(Backend::Production).await;
    let relay = Relay::start().await;
    let db = h.postgres.as_ref().expect("database").url.clone();
    h.config.store = Some(
        db.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", relay.port))
            .parse()
            .expect("a postgres URL"),
    );
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    let before = c
        .submit_letter(letter(ACTIVE_OTHER, "Før", b"%PDF"))
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(outcome(&before), pb::Outcome::AcceptedMailbox);

    relay.cut().await;
    let during = letter(ACTIVE_OTHER, "Under", b"%PDF");
    let err = c
        .submit_letter(during.clone())
        .await
        .expect_err("no accepted receipt while the database is down");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.metadata().get("retry-after-ms").is_some(),
        "a retry hint"
    );
    let err = c
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::LetterId(before.letter_id.clone())),
        })
        .await
        .expect_err("status needs the database too");
    assert_eq!(err.code(), tonic::Code::Unavailable);

    relay.restore();
    // The gateway recovers by itself; the resent letter is accepted once, as a new letter.
    let mut accepted = None;
    for _ in 0..100 {
        match c.submit_letter(during.clone()).await {
            Ok(r) => {
                accepted = Some(r.into_inner());
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let r = accepted.expect("accepted after the outage");
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    assert!(!r.duplicate, "nothing of the failed attempt was stored");
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, 2);
    h.stop().await;
}
