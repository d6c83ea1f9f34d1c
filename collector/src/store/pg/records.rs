//! Agents and enrollment tokens in PostgreSQL: writes by key, the agent's
//! compare-and-swap, and a token's use counted under its row lock.

use super::*;

pub(super) fn put_agent(st: &PgStore, a: &AgentRecord) -> Result<()> {
    let a = a.clone();
    st.run(move |c| async move {
        c.execute(
            "INSERT INTO agents (id, instance_id, revoked, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET instance_id = EXCLUDED.instance_id,
             revoked = EXCLUDED.revoked, doc = EXCLUDED.doc",
            &[&k(&a.id), &k(&a.instance_id), &a.revoked, &encode(&a)?],
        )
        .await
        .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn update_agent(
    st: &PgStore,
    id: &str,
    change: &mut dyn FnMut(&mut AgentRecord),
) -> Result<Option<AgentRecord>> {
    // Compare-and-swap on the whole record: the change runs here, between a read
    // and a write that only lands if nobody wrote meanwhile.
    loop {
        let Some(old) = st.agent(id)? else {
            return Ok(None);
        };
        let mut a = old.clone();
        change(&mut a);
        let written = st.run(move |c| async move {
            c.execute(
                "UPDATE agents SET instance_id = $2, revoked = $3, doc = $4
                 WHERE id = $1 AND doc = $5",
                &[
                    &k(&a.id),
                    &k(&a.instance_id),
                    &a.revoked,
                    &encode(&a)?,
                    &encode(&old)?,
                ],
            )
            .await
            .map_err(pg)
            .map(|n| (n == 1).then_some(a))
        })?;
        if let Some(a) = written {
            return Ok(Some(a));
        }
    }
}

pub(super) fn agent_page(
    st: &PgStore,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<AgentRecord>> {
    let after = after.map(String::from);
    let limit = limit.min(i64::MAX as usize) as i64;
    st.run(move |c| async move {
        let rows = match &after {
            Some(a) => {
                c.query(
                    "SELECT doc FROM agents WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&k(a), &limit],
                )
                .await
            }
            None => {
                c.query("SELECT doc FROM agents ORDER BY id LIMIT $1", &[&limit])
                    .await
            }
        }
        .map_err(pg)?;
        docs(&rows, "agents")
    })
}

pub(super) fn agents_by_instance(st: &PgStore, instance_id: &str) -> Result<Vec<AgentRecord>> {
    if instance_id.is_empty() {
        return Ok(vec![]);
    }
    let i = instance_id.to_string();
    st.run(move |c| async move {
        let st = c
            .prepare_cached(
                "SELECT doc FROM agents WHERE instance_id = $1 AND NOT revoked
                 AND instance_id <> ''::bytea ORDER BY id",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&st, &[&k(&i)]).await.map_err(pg)?;
        docs(&rows, "agents")
    })
}

pub(super) fn agents_by_id(st: &PgStore, ids: &[String]) -> Result<Vec<AgentRecord>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let keys: Vec<Vec<u8>> = ids.iter().map(|i| i.as_bytes().to_vec()).collect();
    st.run(move |c| async move {
        let st = c
            .prepare_cached("SELECT doc FROM agents WHERE id = ANY($1)")
            .await
            .map_err(pg)?;
        let rows = c.query(&st, &[&keys]).await.map_err(pg)?;
        docs(&rows, "agents")
    })
}

pub(super) fn put_token(st: &PgStore, t: &TokenRecord) -> Result<()> {
    let t = t.clone();
    st.run(move |c| async move {
        c.execute(
            "INSERT INTO tokens (hash, id, doc) VALUES ($1, $2, $3)
             ON CONFLICT (hash) DO UPDATE SET id = EXCLUDED.id, doc = EXCLUDED.doc",
            &[&k(&t.hash), &k(&t.id), &encode(&t)?],
        )
        .await
        .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn use_token(st: &PgStore, hash: &str, now_ms: i64) -> Result<TokenUse> {
    let hash = hash.to_string();
    st.run(move |mut c| async move {
        let tx = c.transaction().await.map_err(pg)?;
        let Some(row) = tx
            .query_opt(
                "SELECT doc FROM tokens WHERE hash = $1 FOR UPDATE",
                &[&k(&hash)],
            )
            .await
            .map_err(pg)?
        else {
            return Ok(TokenUse::Unknown);
        };
        let mut t: TokenRecord = doc(&row, &hash)?;
        let verdict = if t.revoked {
            TokenUse::Revoked
        } else if now_ms >= t.expires_at_ms {
            TokenUse::Expired
        } else if t.uses >= t.max_uses {
            TokenUse::UsedUp
        } else {
            t.uses += 1;
            tx.execute(
                "UPDATE tokens SET doc = $2 WHERE hash = $1",
                &[&k(&hash), &encode(&t)?],
            )
            .await
            .map_err(pg)?;
            TokenUse::Accepted(t)
        };
        tx.commit().await.map_err(pg)?;
        Ok(verdict)
    })
}

pub(super) fn revoke_token(st: &PgStore, id: &str) -> Result<Option<TokenRecord>> {
    let id = id.to_string();
    st.run(move |mut c| async move {
        let tx = c.transaction().await.map_err(pg)?;
        let Some(row) = tx
            .query_opt(
                "SELECT hash, doc FROM tokens WHERE id = $1 ORDER BY hash LIMIT 1 FOR UPDATE",
                &[&k(&id)],
            )
            .await
            .map_err(pg)?
        else {
            return Ok(None);
        };
        let hash: Vec<u8> = row.get("hash");
        let before: TokenRecord = doc(&row, &id)?;
        if !before.revoked {
            let after = TokenRecord {
                revoked: true,
                ..before.clone()
            };
            tx.execute(
                "UPDATE tokens SET doc = $2 WHERE hash = $1",
                &[&hash, &encode(&after)?],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(Some(before))
    })
}

/// The gate's reads in one statement: the agent by ID and the live agents by
/// instance ID, each joined to its newest scan.
pub(super) fn gate_candidates(st: &PgStore, id: &str) -> Result<GateCandidates> {
    let id = id.to_string();
    st.run(move |c| async move {
        let sql = c
            .prepare_cached(
                "SELECT 0 AS via, a.id, a.doc, s.doc AS latest FROM agents a
                   LEFT JOIN latest_scans l ON l.agent_id = a.id
                   LEFT JOIN scans s ON s.id = l.scan_id
                  WHERE a.id = $1
                 UNION ALL
                 SELECT 1, a.id, a.doc, s.doc FROM agents a
                   LEFT JOIN latest_scans l ON l.agent_id = a.id
                   LEFT JOIN scans s ON s.id = l.scan_id
                  WHERE a.instance_id = $1 AND NOT a.revoked AND a.instance_id <> ''::bytea
                 ORDER BY 1, 2",
            )
            .await
            .map_err(pg)?;
        let mut out = GateCandidates::default();
        for r in c.query(&sql, &[&k(&id)]).await.map_err(pg)? {
            let agent: AgentRecord = doc(&r, "agents")?;
            let latest: Option<&[u8]> =
                r.try_get("latest")
                    .map_err(|source| StoreError::DecodeRow {
                        key: agent.id.clone(),
                        source,
                    })?;
            let latest: Option<ScanRecord> =
                latest.map(|b| decode(agent.id.as_bytes(), b)).transpose()?;
            if r.get::<_, i32>(0) == 0 {
                out.by_id = Some((agent, latest));
            } else {
                out.by_instance.push((agent, latest));
            }
        }
        Ok(out)
    })
}
