//! Suppression rules: stored by the API, applied by the engine (which reloads them when
//! [`Store::suppression_generation`] changes).

use super::*;

impl Store {
    // -----------------------------------------------------------------------------------------
    // Suppressions
    // -----------------------------------------------------------------------------------------

    /// Validates and stores a suppression rule (durable on return).
    pub fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, StoreError> {
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
        let pool = match s.pool.as_deref().map(crate::model::normalize_name) {
            Some(p) if p == "." || p.len() > MAX_POOL_LEN || p.chars().any(char::is_whitespace) => {
                return Err(StoreError::Invalid(format!("invalid pool entry {p:?}")));
            }
            other => other,
        };
        let id = format!("s{:015x}", self.inner.db.generate_id().map_err(db_err)?);
        let rule = Suppression {
            id: id.clone(),
            client: s.client.map(|n| n.trunc()),
            pool,
            expires: s.expires,
            reason: reason.to_string(),
            created: Timestamp::now(),
        };
        let v = serde_json::to_vec(&rule).map_err(StoreError::Encode)?;
        self.inner
            .suppressions
            .insert(id.as_bytes(), v)
            .map_err(db_err)?;
        self.flush()?;
        self.inner.suppression_gen.fetch_add(1, Ordering::Relaxed);
        Ok(rule)
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
