//! Who is calling, once authenticated, and the single check every handler makes.

use crate::permissions::{Permission, Role, Scope};
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A human: platform staff or a tenant user.
    User,
    /// A tenant's machine client with scopes.
    ApiKey,
    /// A subprocessor's client; its rights come from tenant authorizations, checked in the
    /// transfers domain.
    Subprocessor,
}

impl PrincipalKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Subprocessor => "subprocessor",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// `usr_…`, `key_…` or `sub_…`.
    pub id: String,
    pub role: Option<Role>,
    /// The tenant a tenant user or API key belongs to; `None` for staff and subprocessors.
    pub tenant_id: Option<String>,
    /// API-key scopes; empty for other kinds.
    pub scopes: Vec<Permission>,
}

impl Principal {
    /// Whether the principal holds `permission` at all, ignoring which tenant.
    pub fn holds(&self, permission: Permission) -> bool {
        match self.kind {
            PrincipalKind::User => self.role.is_some_and(|r| r.allows(permission)),
            PrincipalKind::ApiKey => {
                permission.grantable_to_api_key() && self.scopes.contains(&permission)
            }
            PrincipalKind::Subprocessor => matches!(
                permission,
                Permission::SubprocessorPull | Permission::SubprocessorNotices
            ),
        }
    }

    /// The one authorization check. For a tenant route, a tenant-bound principal asking about
    /// another tenant gets `NotFound` — exactly what a missing tenant gives — so existence
    /// never leaks; a principal in the right place without the permission gets `Forbidden`
    /// naming it.
    pub fn require(&self, permission: Permission, tenant_id: Option<&str>) -> Result<(), Error> {
        if let (Some(own), Some(target)) = (self.tenant_id.as_deref(), tenant_id) {
            if own != target {
                return Err(Error::NotFound);
            }
        }
        if permission.scope() == Scope::Tenant && tenant_id.is_none() {
            // A tenant permission checked without a tenant is a programming error; fail closed.
            return Err(Error::Forbidden { permission });
        }
        if self.holds(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden { permission })
        }
    }

    pub fn is_staff(&self) -> bool {
        self.kind == PrincipalKind::User && self.role.is_some_and(Role::is_staff)
    }

    pub fn role_name(&self) -> &'static str {
        match (self.kind, self.role) {
            (PrincipalKind::User, Some(r)) => r.as_str(),
            (kind, _) => kind.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            id: "usr_x".into(),
            role: Some(role),
            tenant_id: tenant.map(String::from),
            scopes: vec![],
        }
    }

    #[test]
    fn foreign_tenant_is_not_found_even_with_permission() {
        let p = user(Role::TenantAdmin, Some("ten_a"));
        assert!(p.require(Permission::VisitorsRead, Some("ten_a")).is_ok());
        assert!(matches!(
            p.require(Permission::VisitorsRead, Some("ten_b")),
            Err(Error::NotFound)
        ));
    }

    #[test]
    fn missing_permission_is_forbidden() {
        let p = user(Role::TenantAuditor, Some("ten_a"));
        assert!(matches!(
            p.require(Permission::VisitorsRead, Some("ten_a")),
            Err(Error::Forbidden { .. })
        ));
    }

    #[test]
    fn api_keys_hold_only_their_scopes() {
        let p = Principal {
            kind: PrincipalKind::ApiKey,
            id: "key_x".into(),
            role: None,
            tenant_id: Some("ten_a".into()),
            scopes: vec![Permission::VisitorsRead, Permission::UsersManage],
        };
        assert!(p.require(Permission::VisitorsRead, Some("ten_a")).is_ok());
        assert!(p.require(Permission::VisitorsWrite, Some("ten_a")).is_err());
        // Not grantable to API keys, even if it sneaked into the scopes.
        assert!(p.require(Permission::UsersManage, Some("ten_a")).is_err());
    }
}
