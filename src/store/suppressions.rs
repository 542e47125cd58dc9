//! Suppression rules: stored by the API, applied by the engine (which reloads them when
//! [`Store::suppression_generation`] changes).

use super::*;

impl Store {
    // -----------------------------------------------------------------------------------------
    // Suppressions
    // -----------------------------------------------------------------------------------------

    /// Validates and stores a suppression rule (durable on return).
    pub fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, StoreError> {
        let id = format!("s{:015x}", self.inner.db.generate_id().map_err(db_err)?);
        let rule = Store::suppression_rule(s, id, Timestamp::now())?;
        self.put_suppression(&rule)?;
        Ok(rule)
    }

    /// The rule `s` would become under `id`, validated and normalised (no I/O): what a cluster
    /// node checks before it publishes a rule to the fleet.
    pub fn suppression_rule(
        s: NewSuppression,
        id: String,
        created: Timestamp,
    ) -> Result<Suppression, StoreError> {
        if s.client.is_none() && s.pool.is_none() {
            return Err(StoreError::Invalid(
                "a suppression needs a client address/CIDR, a pool entry, or both".into(),
            ));
        }
        let reason = s.reason.trim();
        if reason.is_empty() {
            return Err(StoreError::Invalid("a suppression needs a reason".into()));
        }
        if reason.chars().count() > MAX_REASON_LEN {
            return Err(StoreError::Invalid(format!(
                "reason longer than {MAX_REASON_LEN} characters"
            )));
        }
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(StoreError::Invalid(format!(
                "invalid suppression id {id:?}"
            )));
        }
        let pool = match s.pool.as_deref().map(crate::model::normalize_name) {
            Some(p) if p == "." || p.len() > MAX_POOL_LEN || p.chars().any(char::is_whitespace) => {
                return Err(StoreError::Invalid(format!("invalid pool entry {p:?}")));
            }
            other => other,
        };
        Ok(Suppression {
            id,
            client: s.client.map(|n| n.trunc()),
            pool,
            expires: s.expires,
            reason: reason.to_string(),
            created,
        })
    }

    /// Stores `rule` under its own id (durable on return), re-validated (a cluster node stores
    /// the rules other nodes published). Replaces a rule with the same id.
    pub fn put_suppression(&self, rule: &Suppression) -> Result<(), StoreError> {
        let checked = Store::suppression_rule(
            NewSuppression {
                client: rule.client,
                pool: rule.pool.clone(),
                expires: rule.expires,
                reason: rule.reason.clone(),
            },
            rule.id.clone(),
            rule.created,
        )?;
        let v = serde_json::to_vec(&checked).map_err(StoreError::Encode)?;
        self.inner
            .suppressions
            .insert(checked.id.as_bytes(), v)
            .map_err(db_err)?;
        self.flush()?;
        self.inner.suppression_gen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn list_suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.suppressions.iter() {
            let (_, v) = entry.map_err(db_err)?;
            match serde_json::from_slice::<Suppression>(&v) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "skipping undecodable suppression"),
            }
        }
        Ok(out)
    }

    /// Deletes a rule (durable on return). False when no such id.
    pub fn delete_suppression(&self, id: &str) -> Result<bool, StoreError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(false);
        }
        let removed = self
            .inner
            .suppressions
            .remove(id.as_bytes())
            .map_err(db_err)?
            .is_some();
        if removed {
            self.flush()?;
            self.inner.suppression_gen.fetch_add(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Changes whenever suppressions are added or deleted through this handle (or its clones),
    /// so the pipeline knows when to reload them.
    pub fn suppression_generation(&self) -> u64 {
        self.inner.suppression_gen.load(Ordering::Relaxed)
    }
}
