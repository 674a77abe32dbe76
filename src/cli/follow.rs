//! `brevdue events`, `brevdue batch status|cancel`, `brevdue cancel`, `brevdue letters list`:
//! a sender follows its letters. Events are JSON lines on stdout; the last cursor goes to
//! stderr on exit, so a script can resume with `--after`.

use anyhow::{Result, anyhow};
use futures::StreamExt;

use super::client::{Client, describe};
use crate::ingest::pb;

fn state_name(v: i32) -> &'static str {
    pb::LetterState::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
}

pub async fn events(
    client: &mut Client,
    after: &str,
    follow: bool,
    terminal_only: bool,
) -> Result<()> {
    let mut stream = client
        .watch_events(pb::WatchRequest {
            after_cursor: after.to_string(),
            terminal_only,
            follow,
        })
        .await
        .map_err(|s| anyhow!("{}", describe(&s)))?
        .into_inner();
    let mut last = after.to_string();
    let mut failed = None;
    while let Some(e) = stream.next().await {
        match e {
            Ok(e) => {
                println!(
                    "{}",
                    serde_json::json!({
                        "cursor": e.cursor, "letter_id": e.letter_id, "message_uuid": e.message_uuid,
                        "batch_id": e.batch_id, "sender_reference": e.sender_reference,
                        "state": state_name(e.state), "at_unix_ms": e.at_unix_ms, "detail": e.detail,
                    })
                );
                last = e.cursor;
            }
            Err(s) => {
                failed = Some(describe(&s));
                break;
            }
        }
    }
    eprintln!("last cursor: {last}");
    match failed {
        Some(why) => Err(anyhow!("the event stream ended: {why}")),
        None => Ok(()),
    }
}

fn print_batch(b: &pb::BatchStatus) {
    println!("batch {}: {} letters", b.batch_id, b.letters);
    let mut states: Vec<_> = b.by_state.iter().collect();
    states.sort();
    for (s, n) in states {
        println!("  {s:<14} {n}");
    }
    let mut reasons: Vec<_> = b.by_reason.iter().collect();
    reasons.sort();
    for (r, n) in reasons {
        println!("  REJECTED {r:<22} {n}");
    }
}

pub async fn batch_status(client: &mut Client, id: &str) -> Result<()> {
    let b = client
        .get_batch(pb::BatchRequest {
            batch_id: id.to_string(),
        })
        .await
        .map_err(|s| anyhow!("{}", describe(&s)))?
        .into_inner();
    print_batch(&b);
    Ok(())
}

pub async fn batch_cancel(client: &mut Client, id: &str) -> Result<()> {
    let b = client
        .cancel_batch(pb::BatchRequest {
            batch_id: id.to_string(),
        })
        .await
        .map_err(|s| anyhow!("{}", describe(&s)))?
        .into_inner();
    print_batch(&b);
    Ok(())
}

pub async fn cancel(client: &mut Client, id: &str) -> Result<()> {
    let id = id.trim().to_string();
    let mut resp = client
        .cancel_letter(pb::CancelRequest {
            key: Some(pb::cancel_request::Key::LetterId(id.clone())),
        })
        .await;
    if matches!(&resp, Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument))
    {
        resp = client
            .cancel_letter(pb::CancelRequest {
                key: Some(pb::cancel_request::Key::MessageUuid(id)),
            })
            .await;
    }
    let s = resp.map_err(|s| anyhow!("{}", describe(&s)))?.into_inner();
    let state = state_name(s.state);
    if s.state == pb::LetterState::Cancelled as i32 {
        println!(
            "letter {} is CANCELLED: it will not be delivered",
            s.letter_id
        );
        Ok(())
    } else {
        Err(anyhow!(
            "letter {} was not cancelled: it is already {state}",
            s.letter_id
        ))
    }
}

pub async fn list(client: &mut Client, batch: Option<String>, state: Option<String>) -> Result<()> {
    let state = match state {
        Some(s) => pb::LetterState::from_str_name(&s.to_uppercase()).ok_or_else(|| {
            anyhow!("--state {s:?} is not a letter state (ACCEPTED, DELIVERED, …)")
        })? as i32,
        None => 0,
    };
    let mut token = String::new();
    loop {
        let page = client
            .list_letters(pb::ListRequest {
                batch_id: batch.clone().unwrap_or_default(),
                state,
                page_size: 500,
                page_token: token,
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("{}", describe(&s)))?
            .into_inner();
        for l in &page.letters {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                l.letter_id,
                l.message_uuid,
                state_name(l.state),
                l.accepted_at_unix_ms,
                l.batch_id
            );
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}
