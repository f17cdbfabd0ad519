//! The store's own administration (`twofoldctl store check | migrate | import`): what
//! the store is and holds, bringing its schema up to date, and the one-shot copy of a
//! host's SQLite file into a fleet's database. Administrators only; the import reads a
//! file as root, so only root may ask for it.

use super::*;

impl Engine {
    pub fn store_check(&self, caller: &Caller) -> Result<Vec<(String, String)>, ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("store-check", caller, "", d.0))?;
        self.stores.check().map_err(store_error)
    }

    /// Returns the schema version found and the one it is at now.
    pub fn store_migrate(&self, caller: &Caller) -> Result<(i64, i64), ApiError> {
        self.policy()
            .require_admin(caller)
            .map_err(|d| self.refuse("store-migrate", caller, "", d.0))?;
        let found = self.stores.migrate().map_err(store_error)?;
        let now = crate::store::schema::SCHEMA_VERSION;
        self.audit_manage(
            "store-migrate",
            "success",
            caller,
            "",
            &format!("schema {found} -> {now}"),
        );
        Ok((found, now))
    }

    pub fn store_import(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        if caller.uid != 0 {
            return Err(self.refuse(
                "store-import",
                caller,
                "",
                "only root may import a SQLite file (twofoldd reads it as root)".into(),
            ));
        }
        let file = std::path::Path::new(path);
        if path.len() > 4096 || path.contains('\0') || !file.is_absolute() {
            return Err(ApiError::InvalidInput(
                "the SQLite file must be given as an absolute path".into(),
            ));
        }
        let copied = self.stores.import_sqlite(file).map_err(store_error)?;
        let summary: Vec<String> = copied.iter().map(|(t, n)| format!("{t} {n}")).collect();
        self.audit_manage(
            "store-import",
            "success",
            caller,
            "",
            &format!("copied {}", summary.join(", ")),
        );
        Ok(copied)
    }
}
