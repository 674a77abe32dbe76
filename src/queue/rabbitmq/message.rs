//! What a RabbitMQ message says: a letter reference as a small JSON body, never letter content.
//!
//! The body carries everything the queue needs (id, route, priority, when due, when accepted,
//! attempts), so a message can move between the work, delay and dead queues unchanged apart
//! from its counters. Dead letters add when and why they failed.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};

use crate::domain::{LetterId, Priority, Route};
use crate::queue::{DeadLetter, Delivery, Leased, QueueError};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// The header the delay exchange routes on (headers starting `x-` are not matched).
pub const DELAY_HEADER: &str = "brevdue-delay";

/// One queued letter reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub delivery: Delivery,
    pub attempts: u32,
    /// Set on dead letters only.
    pub failed_at_ms: Option<i64>,
    /// Set on dead letters only: the last delivery error.
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    id: String,
    sender: u32,
    route: String,
    priority: i64,
    not_before: i64,
    enqueued_at: i64,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn route_name(route: Route) -> &'static str {
    match route {
        Route::Mailbox => "mailbox",
        Route::Print => "print",
    }
}

fn route_from_name(name: &str) -> Option<Route> {
    match name {
        "mailbox" => Some(Route::Mailbox),
        "print" => Some(Route::Print),
        _ => None,
    }
}

impl Msg {
    pub fn new(delivery: Delivery) -> Msg {
        Msg {
            delivery,
            attempts: 0,
            failed_at_ms: None,
            error: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let d = &self.delivery;
        let body = Body {
            id: d.letter_id.to_string(),
            sender: d.sender.value(),
            route: route_name(d.route).to_string(),
            priority: d.priority.code(),
            not_before: d.not_before_ms,
            enqueued_at: d.enqueued_at_ms,
            attempts: self.attempts,
            failed_at: self.failed_at_ms,
            error: self.error.clone(),
        };
        // A struct of strings and integers always serialises.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    pub fn decode(data: &[u8]) -> Result<Msg, QueueError> {
        let corrupt = |what: &str| QueueError::Corrupt(format!("RabbitMQ message: {what}"));
        let b: Body = serde_json::from_slice(data).map_err(|e| corrupt(&e.to_string()))?;
        Ok(Msg {
            delivery: Delivery {
                letter_id: b.id.parse().map_err(|_| corrupt("letter id"))?,
                sender: crate::domain::Cvr::from_value(b.sender).map_err(|_| corrupt("sender"))?,
                route: route_from_name(&b.route).ok_or_else(|| corrupt("route"))?,
                priority: Priority::from_code(b.priority),
                not_before_ms: b.not_before,
                enqueued_at_ms: b.enqueued_at,
            },
            attempts: b.attempts,
            failed_at_ms: b.failed_at,
            error: b.error,
        })
    }

    pub fn letter_id(&self) -> LetterId {
        self.delivery.letter_id
    }

    /// Persistent, labelled with the letter id (what an operator sees in the management UI),
    /// and with the delay tier header when it goes through the delay exchange.
    pub fn properties(&self, delay_tier: Option<usize>) -> BasicProperties {
        let mut p = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_message_id(self.letter_id().to_string().into());
        if let Some(tier) = delay_tier {
            let mut headers = FieldTable::default();
            headers.insert(DELAY_HEADER.into(), tier_value(tier));
            p = p.with_headers(headers);
        }
        p
    }

    pub fn leased(&self) -> Leased {
        Leased {
            delivery: self.delivery,
            attempts: self.attempts,
        }
    }

    /// A dead letter as operators see it. Messages RabbitMQ dead-lettered on its own (a
    /// rejected or over-delivered message) carry no failure time or error of ours.
    pub fn dead_letter(&self) -> DeadLetter {
        DeadLetter {
            delivery: Delivery {
                not_before_ms: 0,
                ..self.delivery
            },
            attempts: self.attempts,
            failed_at_ms: self.failed_at_ms.unwrap_or(self.delivery.enqueued_at_ms),
            last_error: self
                .error
                .clone()
                .unwrap_or_else(|| "dead-lettered by RabbitMQ".to_string()),
        }
    }
}

/// The header value (and binding argument) that selects delay tier `tier`.
pub fn tier_value(tier: usize) -> AMQPValue {
    AMQPValue::LongString(tier.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let m = Msg {
            delivery: Delivery {
                letter_id: LetterId::new(),
                sender: crate::domain::complete_cvr(2_940_347).unwrap(),
                route: Route::Print,
                priority: Priority::Urgent,
                not_before_ms: 12,
                enqueued_at_ms: 34,
            },
            attempts: 3,
            failed_at_ms: Some(56),
            error: Some("spool full".into()),
        };
        assert_eq!(Msg::decode(&m.encode()).unwrap(), m);
        let plain = Msg::new(m.delivery);
        assert!(!String::from_utf8(plain.encode()).unwrap().contains("error"));
        assert!(matches!(
            Msg::decode(b"{\"id\":\"x\"}"),
            Err(QueueError::Corrupt(_))
        ));
    }
}
