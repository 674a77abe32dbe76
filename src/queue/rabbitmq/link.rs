//! The connection to RabbitMQ: opened (with the topology declared and the lane record read) on
//! first use, checked before every call and replaced when dead, and confirmed publishing on its
//! one confirm-mode channel.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties};

use super::call::{Outgoing, not_found, refused, within};
use super::{QueueError, RabbitQueue, lanes, topology};

/// One connection with its confirm-mode publishing channel.
pub(super) struct Link {
    pub(super) conn: Connection,
    pub(super) publish: Channel,
    pub(super) generation: u64,
}

impl Link {
    fn healthy(&self) -> bool {
        self.conn.status().connected() && self.publish.status().connected()
    }
}

impl RabbitQueue {
    /// The live connection, reconnecting (and redeclaring the topology) if it died.
    pub(super) async fn link(&self) -> Result<Arc<Link>, QueueError> {
        let mut slot = self.link.lock().await;
        if let Some(l) = slot.as_ref() {
            if l.healthy() {
                return Ok(l.clone());
            }
            tracing::warn!(broker = %self.broker, "RabbitMQ connection lost; reconnecting");
        }
        if let Some(old) = slot.take() {
            // Best effort: the link is being replaced because it is broken.
            let _ = tokio::time::timeout(Duration::from_secs(1), old.conn.close(200, "OK".into()))
                .await;
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let what = format!("at {}", self.broker);
        let link = within(
            &what,
            self.timeouts.connect_timeout,
            self.connect(generation),
        )
        .await?;
        let link = Arc::new(link);
        *slot = Some(link.clone());
        Ok(link)
    }

    async fn connect(&self, generation: u64) -> Result<Link, String> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("brevdue {}", self.names.prefix()).into());
        let conn = Connection::connect_uri(self.uri.clone(), props)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        // A broker without this prefix's lane record has none of its queues (a new
        // installation, or the broker lost them): the store must queue every waiting letter
        // again, whatever its publish marker says.
        let probe = conn.create_channel().await.map_err(|e| e.to_string())?;
        match topology::ready(&probe, &self.names.lane_record()).await {
            Ok(_) => {
                let _ = probe.close(200, "OK".into()).await;
            }
            Err(e) if not_found(&e) => self.reset.store(true, Ordering::SeqCst),
            Err(e) => return Err(format!("looking for the queues failed: {e}")),
        }
        let setup = conn.create_channel().await.map_err(|e| e.to_string())?;
        topology::declare(&setup, &self.names)
            .await
            .map_err(|e| format!("declaring the queues failed: {e}"))?;
        // The set-up channel's work is done; a failed close leaves nothing behind that the
        // connection's own close does not take.
        let _ = setup.close(200, "OK".into()).await;
        let recorded = lanes::read_record(&self.uri, &self.names)
            .await
            .map_err(|e| format!("reading the lane record failed: {e}"))?;
        if self.learn_record(&recorded) {
            self.work.notify_waiters();
        }
        let publish = conn.create_channel().await.map_err(|e| e.to_string())?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Link {
            conn,
            publish,
            generation,
        })
    }

    /// Drops the connection of `generation` so the next call starts afresh.
    pub(super) async fn invalidate(&self, generation: u64) {
        let mut slot = self.link.lock().await;
        if slot.as_ref().is_some_and(|l| l.generation == generation)
            && let Some(old) = slot.take()
        {
            // Best effort: the link is being replaced because it is broken.
            let _ = tokio::time::timeout(Duration::from_secs(1), old.conn.close(200, "OK".into()))
                .await;
        }
    }

    /// Publishes everything, then waits for every confirm: durable on `Ok`.
    pub(super) async fn publish(&self, out: &[Outgoing]) -> Result<(), QueueError> {
        let returned = self.publish_returning(out).await?;
        match returned.first() {
            None => Ok(()),
            Some(i) => {
                // A queue is missing (deleted by hand?): declare everything again next time.
                self.invalidate_current().await;
                Err(refused(format!(
                    "could not route a message to {:?}; the queues are declared again on the next call",
                    out[*i].routing_key
                )))
            }
        }
    }

    /// Drops the live connection, whichever it is, so the next call starts afresh.
    pub(super) async fn invalidate_current(&self) {
        let generation = self.link.lock().await.as_ref().map(|l| l.generation);
        if let Some(g) = generation {
            self.invalidate(g).await;
        }
    }

    /// Publishes everything, then waits for every confirm. Every message is durable on `Ok`
    /// but those whose indices are returned: no queue took them (their queue does not exist),
    /// so they were not stored at all.
    async fn publish_returning(&self, out: &[Outgoing]) -> Result<Vec<usize>, QueueError> {
        if out.is_empty() {
            return Ok(Vec::new());
        }
        let link = self.link().await?;
        let confirmations = within("publishing", self.timeouts.call_timeout, async {
            let sends = out.iter().map(|o| {
                link.publish.basic_publish(
                    o.exchange.as_str().into(),
                    o.routing_key.as_str().into(),
                    // Mandatory: a message no queue takes comes back instead of vanishing.
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &o.body,
                    o.properties.clone(),
                )
            });
            let confirms = futures::future::try_join_all(sends).await?;
            futures::future::try_join_all(confirms).await
        })
        .await?;
        let mut returned = Vec::new();
        for (i, c) in confirmations.into_iter().enumerate() {
            match c {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_)) => returned.push(i),
                Confirmation::Nack(_) => {
                    return Err(refused(
                        "refused to store a message (negative confirm)".into(),
                    ));
                }
                Confirmation::NotRequested => {
                    return Err(refused(
                        "publisher confirms are not enabled on the channel".into(),
                    ));
                }
            }
        }
        Ok(returned)
    }
}
