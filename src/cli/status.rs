//! `brevdue status ID`: a sender asks the gateway about one of its letters.

use anyhow::Result;

use super::client::{Client, describe, outcome_name};
use crate::ingest::pb;

pub async fn status(client: &mut Client, id: &str) -> Result<()> {
    let key = if id.trim().len() == 36 {
        // Letter ids and message uuids are both UUIDs: ask by letter id first.
        pb::status_request::Key::LetterId(id.trim().to_string())
    } else {
        pb::status_request::Key::MessageUuid(id.trim().to_string())
    };
    let mut resp = client
        .get_status(pb::StatusRequest { key: Some(key) })
        .await;
    if matches!(&resp, Err(s) if s.code() == tonic::Code::NotFound) {
        resp = client
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::MessageUuid(id.trim().to_string())),
            })
            .await;
    }
    let s = resp
        .map_err(|s| anyhow::anyhow!("{}", describe(&s)))?
        .into_inner();
    let state = pb::LetterState::try_from(s.state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    println!("letter        {}", s.letter_id);
    println!("message_uuid  {}", s.message_uuid);
    println!("state         {state}");
    println!("outcome       {}", outcome_name(s.outcome));
    println!("sha256        {}", s.content_sha256);
    println!("accepted      {}", format_ms(s.accepted_at_unix_ms));
    println!("delivered     {}", format_ms(s.delivered_at_unix_ms));
    println!("attempts      {}", s.attempts);
    if !s.detail.is_empty() {
        println!("detail        {}", s.detail);
    }
    Ok(())
}

pub fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
