//! One marker type per `Permission`, so a handler can name the permission it needs in its
//! signature: `auth: Authorized<perm::VisitorsRead>`.

use steward_core::Permission;

pub trait Perm {
    const PERMISSION: Permission;
}

macro_rules! markers {
    ($($name:ident),* $(,)?) => {
        $(
            #[derive(Debug)]
            pub struct $name;
            impl Perm for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*
    };
}

markers!(
    TenantsCreate,
    TenantsList,
    TenantRead,
    TenantOffboard,
    TenantExport,
    StaffManage,
    SubprocessorsManage,
    PolicyNoticesManage,
    SelfRead,
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
    AccessRequestsCreate,
    AccessRequestsDecide,
    AccessRequestsApproveBreakGlass,
    VisitorsReadUnderGrant,
    AuditRead,
    TenantAuditReadJustified,
    PlatformAuditRead,
    TransfersRead,
    StaffAccessLogRead,
    NoticesRead,
    IncidentsManage,
    SubprocessorPull,
    SubprocessorNotices,
);

/// A set of permissions any one of which suffices (a route two kinds of principal may use,
/// each under its own permission).
pub trait PermAny {
    const ANY: &'static [Permission];
}

macro_rules! any_of {
    ($($name:ident = [$($p:ident),+];)*) => {
        $(
            #[derive(Debug)]
            pub struct $name;
            impl PermAny for $name {
                const ANY: &'static [Permission] = &[$(Permission::$p),+];
            }
        )*
    };
}

any_of! {
    // Tenant admins and auditors read their log; a security officer reads it with a
    // justification, which is itself recorded in the tenant's log.
    AuditReadAny = [AuditRead, TenantAuditReadJustified];
    // Tenant members read visitors; staff read them only under an approved grant.
    VisitorsReadAny = [VisitorsRead, VisitorsReadUnderGrant];
    // Tenant admins see every request; staff see the ones they filed.
    AccessRequestsReadAny = [AccessRequestsDecide, AccessRequestsCreate];
}
