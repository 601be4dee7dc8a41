//! Roles, permissions, and the ONE matrix between them. Every route names a `Permission`;
//! whether a principal holds it is answered here and nowhere else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    // Platform staff: belong to no tenant.
    PlatformAdmin,
    SupportEngineer,
    SecurityOfficer,
    // Tenant users: belong to exactly one tenant.
    TenantAdmin,
    TenantMember,
    TenantAuditor,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::PlatformAdmin,
        Role::SupportEngineer,
        Role::SecurityOfficer,
        Role::TenantAdmin,
        Role::TenantMember,
        Role::TenantAuditor,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::SupportEngineer => "support_engineer",
            Role::SecurityOfficer => "security_officer",
            Role::TenantAdmin => "tenant_admin",
            Role::TenantMember => "tenant_member",
            Role::TenantAuditor => "tenant_auditor",
        }
    }

    /// Staff roles act across tenants (each action still checked); tenant roles only inside
    /// their own tenant.
    pub const fn is_staff(self) -> bool {
        matches!(
            self,
            Role::PlatformAdmin | Role::SupportEngineer | Role::SecurityOfficer
        )
    }

    /// The one matrix: what each role may do.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::PlatformAdmin => &[
                TenantsCreate,
                TenantsList,
                TenantRead,
                TenantOffboard,
                StaffManage,
                SubprocessorsManage,
                PolicyNoticesManage,
                SelfRead,
            ],
            Role::SupportEngineer => &[AccessRequestsCreate, VisitorsReadUnderGrant, SelfRead],
            Role::SecurityOfficer => &[
                AccessRequestsCreate,
                AccessRequestsApproveBreakGlass,
                VisitorsReadUnderGrant,
                PlatformAuditRead,
                TenantAuditReadJustified,
                IncidentsManage,
                SelfRead,
            ],
            Role::TenantAdmin => &[
                TenantRead,
                TenantOffboard,
                TenantExport,
                UsersManage,
                ApiKeysManage,
                KeysRotate,
                VisitorsRead,
                VisitorsWrite,
                VisitorsErase,
                ConsentsWrite,
                RetentionManage,
                LegalHoldManage,
                SubprocessorAuthorizationsManage,
                AccessRequestsDecide,
                AuditRead,
                TransfersRead,
                StaffAccessLogRead,
                NoticesRead,
                SelfRead,
            ],
            Role::TenantMember => &[
                TenantRead,
                VisitorsRead,
                VisitorsWrite,
                VisitorsErase,
                ConsentsWrite,
                NoticesRead,
                SelfRead,
            ],
            Role::TenantAuditor => &[
                TenantRead,
                AuditRead,
                TransfersRead,
                StaffAccessLogRead,
                NoticesRead,
                SelfRead,
            ],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownName)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown name")]
pub struct UnknownName;

/// Whether a permission is exercised inside one tenant (and so bound to the principal's own
/// tenant for tenant roles) or on the platform as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Platform,
    Tenant,
}

macro_rules! permissions {
    ($( $variant:ident => $name:literal, $scope:ident, $api_key:literal; )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission { $( $variant, )* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[ $( Permission::$variant, )* ];

            /// The stable name, also the API-key scope string.
            pub const fn as_str(self) -> &'static str {
                match self { $( Permission::$variant => $name, )* }
            }

            pub const fn scope(self) -> Scope {
                match self { $( Permission::$variant => Scope::$scope, )* }
            }

            /// Whether a tenant API key may be granted this permission as a scope.
            pub const fn grantable_to_api_key(self) -> bool {
                match self { $( Permission::$variant => $api_key, )* }
            }
        }
    };
}

permissions! {
    TenantsCreate => "tenants:create", Platform, false;
    TenantsList => "tenants:list", Platform, false;
    TenantRead => "tenant:read", Tenant, true;
    TenantOffboard => "tenant:offboard", Tenant, false;
    TenantExport => "tenant:export", Tenant, false;
    StaffManage => "staff:manage", Platform, false;
    SubprocessorsManage => "subprocessors:manage", Platform, false;
    PolicyNoticesManage => "policy_notices:manage", Platform, false;
    SelfRead => "self:read", Platform, true;
    UsersManage => "users:manage", Tenant, false;
    ApiKeysManage => "api_keys:manage", Tenant, false;
    KeysRotate => "keys:rotate", Tenant, false;
    VisitorsRead => "visitors:read", Tenant, true;
    VisitorsWrite => "visitors:write", Tenant, true;
    VisitorsErase => "visitors:erase", Tenant, true;
    ConsentsWrite => "consents:write", Tenant, true;
    RetentionManage => "retention:manage", Tenant, false;
    LegalHoldManage => "legal_hold:manage", Tenant, false;
    SubprocessorAuthorizationsManage => "subprocessor_authorizations:manage", Tenant, false;
    AccessRequestsCreate => "access_requests:create", Tenant, false;
    AccessRequestsDecide => "access_requests:decide", Tenant, false;
    AccessRequestsApproveBreakGlass => "access_requests:break_glass", Tenant, false;
    VisitorsReadUnderGrant => "visitors:read_under_grant", Tenant, false;
    AuditRead => "audit:read", Tenant, true;
    TenantAuditReadJustified => "audit:read_justified", Tenant, false;
    PlatformAuditRead => "platform_audit:read", Platform, false;
    TransfersRead => "transfers:read", Tenant, true;
    StaffAccessLogRead => "staff_access:read", Tenant, true;
    NoticesRead => "notices:read", Tenant, true;
    IncidentsManage => "incidents:manage", Platform, false;
    SubprocessorPull => "subprocessor:pull", Tenant, false;
    SubprocessorNotices => "subprocessor:notices", Platform, false;
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(*p));
        }
    }

    #[test]
    fn staff_never_hold_tenant_pii_permissions_directly() {
        for r in [
            Role::PlatformAdmin,
            Role::SupportEngineer,
            Role::SecurityOfficer,
        ] {
            assert!(!r.allows(Permission::VisitorsRead), "{r}");
            assert!(!r.allows(Permission::VisitorsWrite), "{r}");
        }
    }

    #[test]
    fn auditor_reads_no_pii() {
        assert!(!Role::TenantAuditor.allows(Permission::VisitorsRead));
        assert!(Role::TenantAuditor.allows(Permission::AuditRead));
    }

    #[test]
    fn tenant_roles_hold_no_platform_permissions() {
        for r in [Role::TenantAdmin, Role::TenantMember, Role::TenantAuditor] {
            for p in r.permissions() {
                assert!(
                    p.scope() == Scope::Tenant || *p == Permission::SelfRead,
                    "{r} holds {p}"
                );
            }
        }
    }
}
