//! What collectors sharing a database tell each other: the lease of the once-only
//! work, and events over LISTEN/NOTIFY on a connection of their own.

use super::*;

pub(super) fn lease(
    st: &PgStore,
    name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool> {
    let (name, holder) = (name.to_string(), holder.to_string());
    st.run(move |c| async move {
        Ok(c.query_opt(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
             until_ms = EXCLUDED.until_ms
             WHERE leases.holder = EXCLUDED.holder OR leases.until_ms <= $4
             RETURNING holder",
            &[
                &k(&name),
                &k(&holder),
                &now_ms.saturating_add(ttl_ms),
                &now_ms,
            ],
        )
        .await
        .map_err(pg)?
        .is_some())
    })
}

pub(super) fn publish(st: &PgStore, event: &crate::store::Event) -> Result<()> {
    let payload = format!("{} {}", st.origin, event.encode());
    st.run(move |c| async move {
        c.execute("SELECT pg_notify($1, $2)", &[&EVENTS, &payload])
            .await
            .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn subscribe(
    st: &PgStore,
) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::Event>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (config, tls, origin, target) = (
        st.config.clone(),
        st.tls.clone(),
        st.origin.clone(),
        st.target.clone(),
    );
    st.rt
        .as_ref()?
        .spawn(listen(config, tls, origin, target, tx));
    Some(rx)
}

/// LISTENs on its own connection and hands other collectors' events to `tx` until
/// `tx`'s reader goes; a lost connection is made again, after which a
/// [`crate::store::Event::Resync`] says that events may have been missed.
async fn listen(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    origin: String,
    target: String,
    tx: tokio::sync::mpsc::UnboundedSender<crate::store::Event>,
) {
    use tokio_postgres::AsyncMessage;
    let mut first = true;
    while !tx.is_closed() {
        let (client, mut conn) = match config.connect(tls.clone()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(database = %target, error = %pg(e), "cannot listen for other collectors' events; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        // The connection runs beside the LISTEN; notifications come out of it.
        let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if ntx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if let Err(e) = client.batch_execute(&format!("LISTEN {EVENTS}")).await {
            tracing::warn!(database = %target, error = %pg(e), "LISTEN failed; retrying");
            driver.abort();
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        if !first && tx.send(crate::store::Event::Resync).is_err() {
            break;
        }
        first = false;
        while let Some(payload) = nrx.recv().await {
            let Some((from, text)) = payload.split_once(' ') else {
                continue;
            };
            if from == origin {
                continue;
            }
            match crate::store::Event::decode(text) {
                Some(e) => {
                    if tx.send(e).is_err() {
                        break;
                    }
                }
                None => {
                    tracing::warn!(event = %text, "an event from another collector is not understood")
                }
            }
        }
        driver.abort();
        drop(client);
        if !tx.is_closed() {
            tracing::warn!(database = %target, "the event connection ended; listening again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
